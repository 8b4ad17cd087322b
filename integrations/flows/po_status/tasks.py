"""django-q2 entry points for the Sage 100 PO status flow: changed POs → the linked request tasks.

poll_po_status(flow_id)   one pass (sync.py does the work); every pass is a SyncRun
poll_all()                every enabled PO status flow (the schedule)
ensure_schedules()        the schedule, idempotently
"""

from __future__ import annotations

from django.utils import timezone

from audit.models import SyncRun
from integrations.base import errors, schedules
from integrations.flows import clients as flow_clients
from integrations.flows.clients import Clients
from integrations.flows.po_status.sync import poll_changed_pos
from integrations.models import Flow

MODULE = "integrations.flows.po_status.tasks"


def _flow(flow_id: int) -> Flow | None:
    return (
        Flow.objects.select_related("tenant")
        .filter(pk=flow_id, kind=Flow.Kind.SAGE100_PO_STATUS, enabled=True)
        .first()
    )


def poll_po_status(
    flow_id: int,
    *,
    reconcile: bool | None = None,
    clients: Clients | None = None,
    trigger: str = "",
    triggered_by: str = "",
) -> str:
    flow = _flow(flow_id)
    if flow is None:
        return "flow disabled or gone"
    # Every pass is a run (the dashboard's "last successful pass" reads it), scheduled or not.
    run = SyncRun.objects.create(
        tenant=flow.tenant, flow=flow, trigger=trigger or SyncRun.Trigger.SCHEDULE, triggered_by=triggered_by
    )
    clients = clients or flow_clients.clients_for(flow.tenant)
    asana, sage = clients.asana, clients.sage
    ok = True
    try:
        answer = poll_changed_pos(flow, asana=asana, sage=sage, reconcile=reconcile)
    except errors.RetryableError as exc:
        ok, answer = False, f"agent not reachable, next pass retries: {exc}"
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.SUCCEEDED if ok else SyncRun.Status.FAILED,
        finished_at=timezone.now(),
        message=answer[:2000],
    )
    return answer


def poll_all() -> str:
    flows = Flow.objects.filter(enabled=True, tenant__active=True, kind=Flow.Kind.SAGE100_PO_STATUS)
    return "; ".join(f"{flow}: {poll_po_status(flow.pk)}" for flow in flows) or "no PO status flows"


def ensure_schedules(minutes: int = 2) -> list[str]:
    """Idempotent: the PO status poll every `minutes` minutes."""
    return [schedules.ensure("sage100-po-status-poll", f"{MODULE}.poll_all", minutes=minutes)]


def run_once(flow: Flow, actor: str) -> tuple[bool, str]:
    """One PO status pass now (it records its run)."""
    answer = poll_po_status(flow.pk, trigger=SyncRun.Trigger.MANUAL, triggered_by=actor)
    return "not reachable" not in answer, answer
