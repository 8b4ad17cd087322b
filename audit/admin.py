"""The audit trail in the console: read-only lists with filters an operator needs."""

from django.contrib import admin
from django.utils.html import format_html

from integrations.console.permissions import can_replay
from integrations.console.replay_admin import replay_entries_action
from integrations.console.tenancy import ReadOnlyAdmin, ScopedModelAdmin
from integrations.console.views import SyncRunConsole
from integrations.membership import Role

from .models import Alert, ApiCall, AuditEntry, InboundEvent, SyncRun


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "received_at", "source", "tenant", "signature", "status", "dedupe_key")
    list_filter = ("source", "status", "signature", "tenant")
    search_fields = ("dedupe_key", "status_reason")
    date_hierarchy = "received_at"
    exclude = ("raw_body",)
    readonly_fields = ("body",)

    @admin.display(description="Raw body")
    def body(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.body_text[:20000])


@admin.register(SyncRun)
class SyncRunAdmin(SyncRunConsole, ReadOnlyAdmin):
    list_display = (
        "id",
        "started_at",
        "tenant",
        "flow",
        "trigger",
        "status",
        "progress",
        "counts",
        "finished_at",
    )
    list_filter = ("status", "trigger", "tenant", "flow")
    date_hierarchy = "started_at"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "tenant",
        "flow",
        "operation",
        "record_key",
        "status",
        "attempts",
        "actor",
        "replay_of",
        "short_error",
    )
    list_filter = ("status", "operation", "tenant", "flow", "actor")
    actions = [replay_entries_action]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not can_replay(request.user):
            actions.pop("replay_entries_action", None)
        return actions

    search_fields = ("record_key", "idempotency_key", "error")
    date_hierarchy = "created_at"

    @admin.display(description="Error")
    def short_error(self, obj):
        return (obj.error or "")[:120]


@admin.register(ApiCall)
class ApiCallAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "started_at",
        "system",
        "method",
        "url",
        "status_code",
        "duration_ms",
        "attempt",
        "tenant",
    )
    list_filter = ("system", "method", "status_code", "tenant")
    search_fields = ("url", "error")
    date_hierarchy = "started_at"


@admin.register(Alert)
class AlertAdmin(ScopedModelAdmin):
    """Alerts are raised by the connector; operators (replay & sync) may mark them resolved."""

    change_role = Role.OPERATE
    list_display = ("last_raised_at", "tenant", "kind", "subject", "count", "last_notified_at", "resolved_at")
    list_filter = ("kind", "tenant", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("subject", "message")
    readonly_fields = [f.name for f in Alert._meta.fields if f.name != "resolved_at"]
    actions = ["resolve"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark resolved", permissions=["change"])
    def resolve(self, request, queryset):
        from django.utils import timezone

        n = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        self.message_user(request, f"{n} alert(s) marked resolved.")
