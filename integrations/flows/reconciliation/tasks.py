"""django-q2 entry points of the reconciliation (module functions taking ids) and its schedule."""

from __future__ import annotations

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
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": "integrations.flows.reconciliation.tasks.reconcile_all",
            "schedule_type": Schedule.MINUTES,
            "minutes": EVERY_MINUTES,
            "repeats": -1,
        },
    )
    return [f"{SCHEDULE_NAME} every {EVERY_MINUTES // 60} h"]
