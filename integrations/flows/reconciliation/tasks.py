"""django-q2 entry points of the reconciliation (module functions taking ids) and its schedule."""

from __future__ import annotations

from integrations.base import schedules
from integrations.models import Tenant

SCHEDULE_NAME = "reconciliation:daily"
EVERY_MINUTES = 24 * 60


def reconcile_all() -> str:
    """The scheduled job: every active tenant, one run each."""
    from .report import reconcile

    lines = []
    for tenant in Tenant.objects.filter(active=True).order_by("slug"):
        run = reconcile(tenant)
        lines.append(f"{tenant.slug}: {run.status}, {run.difference_count} difference(s)")
    return "; ".join(lines) or "no active tenant"


def reconcile_tenant(tenant_id: int, actor: str = "schedule") -> str:
    from .report import reconcile

    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return "tenant gone"
    run = reconcile(tenant, actor=actor)
    return f"run #{run.pk}: {run.status}, {run.difference_count} difference(s)"


def ensure_schedules() -> list[str]:
    func = "integrations.flows.reconciliation.tasks.reconcile_all"
    return [schedules.ensure(SCHEDULE_NAME, func, minutes=EVERY_MINUTES)]
