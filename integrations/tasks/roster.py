"""django-q2 entry points for the employee roster (daily schedule; `connector roster` runs it by hand)."""

from __future__ import annotations

from integrations.models import Flow


def sync_roster(flow_id: int, apply: bool | None = None) -> str:
    """One roster flow. `apply=None` follows the flow's `apply_on_schedule` option (default: report only)."""
    from integrations.flows.approvals import clients_for
    from integrations.flows.roster import sync_roster as run

    flow = Flow.objects.select_related("tenant").get(pk=flow_id)
    if apply is None:
        apply = bool((flow.options or {}).get("apply_on_schedule", False))
    result = run(flow, clients=clients_for(flow.tenant), apply=apply, actor="schedule")
    return result.error or f"{'applied' if apply else 'dry run'}: {result.run.counts}"


def sync_roster_all() -> str:
    flows = Flow.objects.filter(kind=Flow.Kind.ACUMATICA_EMPLOYEES, enabled=True, tenant__active=True)
    return "; ".join(f"{flow}: {sync_roster(flow.pk)}" for flow in flows) or "no roster flows"
