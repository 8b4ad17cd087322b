"""Dry run of a flow and the progress page of a run, as admin views.

Dry run: the flow's own polling pass with `dry_run=True` (integrations/flows/documents/poll)
— the same plan `connector sync --dry-run` prints: creates, updates with their field diffs, closes,
quarantines. Nothing is written anywhere (no task, link, audit row, cursor or API-call row).
Progress: a run page that refreshes itself while the run is `running` (backfills, bulk replays).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit.models import AuditEntry, SyncRun
from integrations.base import errors
from integrations.models import Flow

from .permissions import can_run_sync
from .tenancy import Role, get_scoped_or_404

DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)
REFRESH_SECONDS = 3
MAX_PLANS_SHOWN = 500


def dry_run_plan(flow: Flow) -> tuple[dict[str, int], list]:
    """(counts, plans) of what a pass would do now; raises ConnectorError/ConfigurationError."""
    from integrations.flows.documents.poll import poll
    from integrations.flows.documents.sync import DocumentSync

    if flow.kind not in DOCUMENT_KINDS:
        raise errors.ConfigurationError(
            f"a dry run plans bills / purchase order flows; {flow} is {flow.kind}"
        )
    result = poll(DocumentSync(flow, dry_run=True, actor="console"), trigger=SyncRun.Trigger.DRY_RUN)
    return result.counts, result.plans


class FlowConsole:
    """Adds the "Dry run" page and action to FlowAdmin."""

    def get_urls(self):
        return [
            path(
                "<int:flow_id>/dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="integrations_flow_dry_run",
            )
        ] + super().get_urls()

    def get_actions(self, request):
        actions = super().get_actions(request)
        if can_run_sync(request.user):
            actions["dry_run"] = self.get_action("dry_run")
            if hasattr(self, "sync_now"):  # issue 4's action: operators may sync without editing flows
                actions["sync_now"] = self.get_action("sync_now")
        return actions

    @admin.action(description="Dry run: show the plan a sync would do now")
    def dry_run(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one flow for a dry run.", messages.WARNING)
            return None
        return redirect(reverse("admin:integrations_flow_dry_run", args=[queryset.get().pk]))

    def dry_run_view(self, request, flow_id: int):
        flow = get_scoped_or_404(
            request.user, Flow.objects.select_related("tenant"), Role.OPERATE, pk=flow_id
        )
        if not can_run_sync(request.user, flow.tenant_id):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Dry run: {flow}",
            "opts": Flow._meta,
            "flow": flow,
        }
        try:
            counts, plans = dry_run_plan(flow)
            context.update(counts=counts, plans=plans[:MAX_PLANS_SHOWN])
        except (errors.ConnectorError, errors.ConfigurationError) as exc:
            context["error"] = f"The dry run could not complete: {exc}"
        except ObjectDoesNotExist:
            context["error"] = "The tenant lacks the Acumatica or Asana connection this flow needs."
        return TemplateResponse(request, "admin/console/dry_run.html", context)


class SyncRunConsole:
    """Adds a progress column and the auto-refreshing run page to SyncRunAdmin."""

    def get_urls(self):
        return [
            path(
                "<int:run_id>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="audit_syncrun_progress",
            )
        ] + super().get_urls()

    @admin.display(description="Progress")
    def progress(self, obj):
        done, total = obj.progress_done, obj.progress_total
        text = f"{done}/{total}" if total else str(done)
        width = int(100 * done / total) if total else (100 if obj.status != "running" else 0)
        return format_html(
            '<a href="{}"><span class="progress" style="width:80px;display:inline-block;background:#eee">'
            '<span style="display:block;height:8px;width:{}%;background:#1a7f37"></span></span> {}</a>',
            reverse("admin:audit_syncrun_progress", args=[obj.pk]),
            min(width, 100),
            text,
        )

    def progress_view(self, request, run_id: int):
        run = get_scoped_or_404(request.user, SyncRun.objects.select_related("flow", "tenant"), pk=run_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        total = run.progress_total or 0
        percent = int(100 * run.progress_done / total) if total else (0 if run.status == "running" else 100)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run #{run.pk}",
            "opts": SyncRun._meta,
            "run": run,
            "percent": min(percent, 100),
            "refresh_seconds": REFRESH_SECONDS,
            "entries": AuditEntry.objects.filter(run=run).order_by("-created_at", "-id")[:200],
        }
        return TemplateResponse(request, "admin/console/run_progress.html", context)
