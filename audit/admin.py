"""The audit trail in the console: read-only lists with filters an operator needs."""

from django.contrib import admin
from django.utils.html import format_html

from .models import ApiCall, AuditEntry, InboundEvent, SyncRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """Viewable by anyone with the view permission; never added, changed or deleted from the console."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
class SyncRunAdmin(ReadOnlyAdmin):
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

    @admin.display(description="Progress")
    def progress(self, obj):
        if obj.progress_total:
            return f"{obj.progress_done}/{obj.progress_total}"
        return str(obj.progress_done)


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
        "short_error",
    )
    list_filter = ("status", "operation", "tenant", "flow", "actor")
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
