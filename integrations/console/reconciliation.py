"""The reconciliation pages: each run's report (counts and totals per class of difference, the trend over
the last runs, one row per difference linking to the record's lineage) and the fix of one difference as
a guarded replay — the preview of what it would write first, and only a POST with `post=yes` queues it.

Everyone with view on the tenant (auditors included) reads the reports; fixing needs the replay
permission on the tenant (operate), running a reconciliation now needs run-sync (operate).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from audit.models import ReconciliationDifference, ReconciliationRun
from integrations.flows import reconciliation
from integrations.flows.reconciliation import tasks as reconciliation_tasks

from . import lineage
from .permissions import can_replay, can_run_sync
from .tenancy import ReadOnlyAdmin, Role, get_scoped_or_404, scope

TREND_RUNS = 10


class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "tenant", "started_at", "status", "differences_found", "triggered_by")
    list_filter = ("tenant", "status")
    date_hierarchy = "started_at"

    @admin.display(description="Differences")
    def differences_found(self, obj):
        return obj.difference_count

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("latest/", wrap(self.latest_view), name="audit_reconciliationrun_latest"),
            path("<int:run_id>/report/", wrap(self.report_view), name="audit_reconciliationrun_report"),
            path("run-now/", wrap(self.run_now_view), name="audit_reconciliationrun_run_now"),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            return super().change_view(request, object_id, form_url, extra_context)
        return self.report_view(request, int(object_id))

    def latest_view(self, request):
        """The newest run of each of the user's tenants."""
        runs = scope(ReconciliationRun.objects.select_related("tenant"), request.user).order_by(
            "tenant", "-pk"
        )
        latest = {}
        for run in runs:
            latest.setdefault(run.tenant_id, run)
        if len(latest) == 1:
            return redirect(
                reverse("admin:audit_reconciliationrun_report", args=[next(iter(latest.values())).pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Reconciliation",
            "opts": ReconciliationRun._meta,
            "latest": list(latest.values()),
        }
        return TemplateResponse(request, "admin/console/reconciliation_latest.html", context)

    def report_view(self, request, run_id: int):
        run = get_scoped_or_404(request.user, ReconciliationRun.objects.select_related("tenant"), pk=run_id)
        trend_runs = list(
            ReconciliationRun.objects.filter(
                tenant=run.tenant, pk__lte=run.pk, finished_at__isnull=False
            ).order_by("-pk")[:TREND_RUNS]
        )[::-1]
        classes = list(reconciliation.DIFFERENCES.items())
        trend = [
            {
                "label": label,
                "name": name,
                "counts": [((r.totals or {}).get(name) or {}).get("count", "—") for r in trend_runs],
            }
            for name, label in classes
        ]
        rows = []
        for d in run.differences.select_related("record_link", "flow"):
            rows.append(
                {
                    "d": d,
                    "label": reconciliation.DIFFERENCES.get(d.difference, d.difference),
                    "lineage": reverse("admin:integrations_recordlink_lineage", args=[d.record_link_id])
                    if d.record_link_id
                    else "",
                    "asana": lineage.asana_permalink(d.record_link) if d.record_link_id else "",
                    "fix": reverse("admin:audit_reconciliationdifference_fix", args=[d.pk]),
                }
            )
        totals = [
            {
                "name": name,
                "label": label,
                **((run.totals or {}).get(name) or {}),
                "compared": name in (run.totals or {}),
            }
            for name, label in classes
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reconciliation: {run.tenant.name}",
            "opts": ReconciliationRun._meta,
            "run": run,
            "totals": totals,
            "trend": trend,
            "trend_runs": trend_runs,
            "rows": rows,
            "can_fix": can_replay(request.user, run.tenant_id),
            "can_run": can_run_sync(request.user, run.tenant_id),
        }
        return TemplateResponse(request, "admin/console/reconciliation.html", context)

    def run_now_view(self, request):
        from django_q.tasks import async_task

        from integrations.models import Tenant

        tenant_id = request.POST.get("tenant", "")
        if request.method != "POST" or not tenant_id.isdigit():
            raise PermissionDenied
        tenant = get_scoped_or_404(request.user, Tenant.objects.all(), Role.OPERATE, pk=int(tenant_id))
        if not can_run_sync(request.user, tenant.pk):
            raise PermissionDenied
        async_task(reconciliation_tasks.reconcile_tenant, tenant.pk, request.user.get_username())
        self.message_user(request, f"Reconciliation of {tenant.slug} queued.", messages.SUCCESS)
        return redirect(reverse("admin:audit_reconciliationrun_latest"))


class ReconciliationDifferenceAdmin(ReadOnlyAdmin):
    """The differences, read-only, filterable across runs; each one's fix page."""

    list_display = ("difference", "key", "amount", "tenant", "run", "detail")
    list_filter = ("tenant", "difference")
    search_fields = ("key", "acumatica_ref", "asana_task_gid", "sage_po_number")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:diff_id>/fix/", wrap(self.fix_view), name="audit_reconciliationdifference_fix"),
        ] + super().get_urls()

    def fix_view(self, request, diff_id: int):
        diff = get_scoped_or_404(
            request.user,
            ReconciliationDifference.objects.select_related("tenant", "flow", "record_link__flow", "run"),
            Role.OPERATE,
            pk=diff_id,
        )
        if not can_replay(request.user, diff.tenant_id):
            raise PermissionDenied
        if request.method == "POST" and request.POST.get("post") == "yes":
            actor = request.user.get_username()
            run = reconciliation.enqueue(diff, actor=actor)
            if diff.record_link_id:
                lineage.log_operator_action(
                    request,
                    diff.record_link,
                    f"Fixed reconciliation difference {diff.difference} (run #{run.pk})",
                )
            self.message_user(request, f"Fix queued as run #{run.pk}.", messages.SUCCESS)
            return redirect(reverse("admin:audit_syncrun_progress", args=[run.pk]))
        preview = reconciliation.preview(diff)
        context = {
            **self.admin_site.each_context(request),
            "title": "Fix a reconciliation difference: confirm",
            "opts": ReconciliationRun._meta,
            "diff": diff,
            "label": reconciliation.DIFFERENCES.get(diff.difference, diff.difference),
            "previews": [preview],
            "runnable": preview.runnable,
            "back": reverse("admin:audit_reconciliationrun_report", args=[diff.run_id]),
        }
        return TemplateResponse(request, "admin/console/reconciliation_fix.html", context)


def install(site: admin.AdminSite) -> None:
    if ReconciliationRun not in site._registry:
        site.register(ReconciliationRun, ReconciliationRunAdmin)
    if ReconciliationDifference not in site._registry:
        site.register(ReconciliationDifference, ReconciliationDifferenceAdmin)
