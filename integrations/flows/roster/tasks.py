"""django-q2 entry points for the employee roster (daily schedule; `connector roster` runs it by hand)."""

from __future__ import annotations

from integrations.base import schedules
from integrations.flows import clients as flow_clients
from integrations.flows.roster.sync import sync_roster as run
from integrations.models import Flow


def sync_roster(flow_id: int, apply: bool | None = None) -> str:
    """One roster flow. `apply=None` follows the flow's `apply_on_schedule` option (default: report only)."""

    flow = Flow.objects.select_related("tenant").get(pk=flow_id)
    if apply is None:
        apply = bool((flow.options or {}).get("apply_on_schedule", False))
    result = run(flow, clients=flow_clients.clients_for(flow.tenant), apply=apply, actor="schedule")
    return result.error or f"{'applied' if apply else 'dry run'}: {result.run.counts}"


def sync_roster_all() -> str:
    flows = Flow.objects.filter(kind=Flow.Kind.ACUMATICA_EMPLOYEES, enabled=True, tenant__active=True)
    return "; ".join(f"{flow}: {sync_roster(flow.pk)}" for flow in flows) or "no roster flows"


def ensure_schedules() -> list[str]:
    """Idempotent: every roster flow daily."""
    return [
        schedules.ensure("employee-roster", "integrations.flows.roster.tasks.sync_roster_all", daily=True)
    ]


def run_once(flow: Flow, actor: str) -> tuple[bool, str]:
    """One roster pass now, report-only (it records its run)."""
    from audit.models import SyncRun

    answer = sync_roster(flow.pk, apply=False)
    run = SyncRun.objects.filter(flow=flow).order_by("-started_at", "-pk").first()
    return bool(run and run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)), answer
