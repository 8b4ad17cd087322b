"""The operator console: tenants with their connections and flows inline."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from mappings.admin_views import DocumentFlowActions

from .console.tenancy import ScopedModelAdmin, SuperuserOnlyAdmin
from .forms import WriteOnlySecretsForm
from .models import (
    AcumaticaConnection,
    AsanaConnection,
    AsanaWebhook,
    Cursor,
    Flow,
    GuardedWrite,
    RecordLink,
    Sage100Connection,
    TaskAttachment,
    Tenant,
    TenantMembership,
)


class ConnectionInline(admin.StackedInline):
    form = WriteOnlySecretsForm
    extra = 0
    max_num = 1
    can_delete = True
    readonly_fields = ("last_checked_at", "last_check_ok", "last_check_message")


class AcumaticaInline(ConnectionInline):
    model = AcumaticaConnection
    readonly_fields = ConnectionInline.readonly_fields + ("build_version", "push_url", "token_expires_at")

    @admin.display(description="Push notification URL")
    def push_url(self, obj):
        from django.conf import settings

        if not obj or not obj.pk:
            return "—"
        return f"{settings.PUBLIC_BASE_URL}/hooks/acumatica/{obj.push_uuid}/"


class AsanaInline(ConnectionInline):
    model = AsanaConnection
    readonly_fields = ConnectionInline.readonly_fields + ("token_expires_at",)


class Sage100Inline(ConnectionInline):
    model = Sage100Connection
    readonly_fields = ConnectionInline.readonly_fields + ("agent_version",)


class FlowInline(admin.TabularInline):
    model = Flow
    extra = 0
    fields = (
        "name",
        "kind",
        "enabled",
        "asana_project_gid",
        "asana_section_gid",
        "poll_interval_minutes",
        "mapping_status",
    )
    readonly_fields = ("mapping_status",)
    show_change_link = True


@admin.register(Tenant)
class TenantAdmin(ScopedModelAdmin):
    list_display = ("slug", "name", "active", "systems", "flow_count", "updated_at")
    list_filter = ("active",)
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [AcumaticaInline, AsanaInline, Sage100Inline, FlowInline]

    @admin.display(description="Connected systems")
    def systems(self, obj):
        names = [
            label
            for attr, label in (("acumatica", "Acumatica"), ("asana", "Asana"), ("sage100", "Sage 100"))
            if hasattr(obj, attr)
        ]
        return ", ".join(names) or "—"

    @admin.display(description="Flows")
    def flow_count(self, obj):
        return obj.flows.count()

    actions = ["test_connections", "register_webhooks"]

    # A whole tenant is created or deleted by a superuser (who then grants memberships).
    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_test_permission(self, request) -> bool:
        from integrations.console.permissions import can_run_sync

        return can_run_sync(request.user) or self.has_change_permission(request)

    @admin.action(description="Test connections", permissions=["test"])
    def test_connections(self, request, queryset):
        """Runs `connector check` for the selected tenants: read-only calls, verdicts stored and shown."""
        from django.contrib import messages

        from integrations.flows.checks import check_tenant

        for tenant in queryset:
            verdicts = check_tenant(tenant)
            if not verdicts:
                self.message_user(request, f"{tenant.slug}: no connections configured.", messages.WARNING)
            for system, results in verdicts.items():
                failed = [r for r in results if not r.ok]
                if failed:
                    detail = "; ".join(f"{r.what}: {r.detail}" for r in failed)
                    self.message_user(request, f"{tenant.slug} · {system}: FAILED — {detail}", messages.ERROR)
                else:
                    self.message_user(
                        request, f"{tenant.slug} · {system}: OK ({len(results)} checks)", messages.SUCCESS
                    )

    @admin.action(description="Register Asana webhooks (queued)", permissions=["change"])
    def register_webhooks(self, request, queryset):
        """Queued, never run here: Asana's handshake must reach a web worker while the create is open."""
        from django_q.tasks import async_task

        from integrations.flows.inbound.tasks import register_webhooks

        tenants = [t for t in queryset if hasattr(t, "asana")]
        for tenant in tenants:
            async_task(
                register_webhooks,
                tenant.pk,
                task_name=f"register-webhooks-{tenant.slug}",
            )
        self.message_user(
            request,
            f"Webhook registration queued for {len(tenants)} tenant(s); see Asana webhooks for the result.",
        )


@admin.register(Flow)
class FlowAdmin(DocumentFlowActions, ScopedModelAdmin):
    list_display = ("name", "tenant", "kind", "enabled", "asana_project_gid", "mapping_badge", "updated_at")
    list_filter = ("tenant", "kind", "enabled", "mapping_status")
    search_fields = ("name", "tenant__slug", "asana_project_gid")
    readonly_fields = ("mapping_status", "mapping_status_reason", "created_at", "updated_at")

    @admin.display(description="Mapping")
    def mapping_badge(self, obj):
        color = "#1a7f37" if obj.mapping_status == Flow.MappingStatus.OK else "#cf222e"
        return format_html('<b style="color:{}">{}</b>', color, obj.get_mapping_status_display())


@admin.register(Cursor)
class CursorAdmin(ScopedModelAdmin):
    list_display = ("tenant", "stream", "value", "updated_at")
    list_filter = ("tenant",)
    search_fields = ("stream",)


@admin.register(RecordLink)
class RecordLinkAdmin(ScopedModelAdmin):
    list_display = (
        "__str__",
        "tenant",
        "flow",
        "state",
        "state_reason",
        "asana_task_gid",
        "sage_po_number",
        "updated_at",
    )
    list_filter = ("tenant", "kind", "state", "flow")
    search_fields = ("acumatica_ref", "asana_task_gid", "sage_po_number", "acumatica_id")
    readonly_fields = [f.name for f in RecordLink._meta.fields]
    actions = ("adopt_only_candidate", "create_new_task")

    def has_add_permission(self, request):
        return False

    def _resolve(self, request, queryset, **how) -> None:
        from integrations.flows.documents import parked

        done, refused = 0, []
        for link in queryset.filter(state=RecordLink.State.NEEDS_PERSON):
            candidates = [c.get("gid") for c in (link.review or {}).get("candidates", [])]
            choice = dict(how)
            if choice.get("adopt_gid") == "only":
                if len(candidates) != 1:
                    refused.append(
                        f"{link}: {len(candidates)} candidates — choose with `connector links resolve`"
                    )
                    continue
                choice["adopt_gid"] = str(candidates[0])
            try:
                parked.resolve(link.pk, actor=f"console:{request.user.get_username()}", **choice)
                done += 1
            except parked.CannotResolve as exc:
                refused.append(str(exc))
        self.message_user(request, f"{done} record(s) decided.")
        for text in refused:
            self.message_user(request, text, level="warning")

    @admin.action(description="Waiting for a person: adopt the only candidate task")
    def adopt_only_candidate(self, request, queryset):
        self._resolve(request, queryset, adopt_gid="only")

    @admin.action(description="Waiting for a person: create a new task instead")
    def create_new_task(self, request, queryset):
        self._resolve(request, queryset, create=True)

    adopt_only_candidate.tenant_role = "operate"
    create_new_task.tenant_role = "operate"


@admin.register(GuardedWrite)
class GuardedWriteAdmin(ScopedModelAdmin):
    """What every approval was bound to: the guarded values written to a task, on Asana's clock."""

    list_display = ("link", "operation", "values", "previous", "asana_time", "approval_reset")
    list_filter = ("operation", "approval_reset")
    search_fields = ("link__acumatica_ref", "link__asana_task_gid")
    readonly_fields = [f.name for f in GuardedWrite._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TaskAttachment)
class TaskAttachmentAdmin(ScopedModelAdmin):
    """Acumatica files put on each task (or skipped, with the reason): read-only (issue 21)."""

    list_display = ("link", "file_name", "state", "size", "asana_attachment_gid", "reason", "updated_at")
    list_filter = ("state",)
    search_fields = ("link__acumatica_ref", "link__asana_task_gid", "file_name", "sha256")
    readonly_fields = [f.name for f in TaskAttachment._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AsanaWebhook)
class AsanaWebhookAdmin(ScopedModelAdmin):
    form = WriteOnlySecretsForm
    list_display = (
        "resource_gid",
        "tenant",
        "state",
        "webhook_gid",
        "last_heartbeat_at",
        "last_event_at",
        "failure_deletion_timestamp",
    )
    list_filter = ("tenant", "state")
    search_fields = ("resource_gid", "webhook_gid")
    readonly_fields = (
        "target_uuid",
        "webhook_gid",
        "pending_since",
        "last_event_at",
        "last_heartbeat_at",
        "last_checked_at",
        "last_failure_at",
        "last_failure_content",
        "failure_deletion_timestamp",
        "created_at",
    )


@admin.register(TenantMembership)
class TenantMembershipAdmin(SuperuserOnlyAdmin, admin.ModelAdmin):
    """Who sees which tenant, with which role. Granted by superusers; the user must be staff to log in."""

    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role", "tenant")
    search_fields = ("user__username", "user__email", "tenant__slug")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not obj.user.is_staff:  # the console admits staff only: a membership is meant to be used
            type(obj.user).objects.filter(pk=obj.user_id).update(is_staff=True)
            self.message_user(request, f"{obj.user} may now sign in to the console (staff).")


from integrations.console import controls as _finance_controls  # noqa: E402,F401  (registers ControlHoldAdmin)
