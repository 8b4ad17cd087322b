"""django-q2 entry points for the Sage 100 flows (ids in; the flows do the work).

    process_purchase_request(flow_id, task_gid)   one task (webhook path and retries)
    poll_purchase_requests(flow_id)               catch-up: tasks modified since the cursor, plus links
                                                  left in `creating` (agent down, lock, lost answer)
    poll_po_status(flow_id)                       changed POs → the linked tasks (sage_po_status)
    poll_all()                                    every enabled flow of both kinds (the schedule)
    ensure_schedules()                            the catch-up schedule, idempotently
A retryable error schedules one retry after its retry_after (at least 5 s); permanent errors are
already in the audit trail and the task ends.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.base import errors
from integrations.models import Cursor, Flow, RecordLink
from integrations.tasks.retries import schedule_retry

log = logging.getLogger(__name__)

MODULE = "integrations.tasks.sage100"
OVERLAP = timedelta(minutes=5)


def clients_for(tenant) -> tuple[Any, Any]:
    """(asana, sage) clients for a tenant (tests replace this with sandbox clients)."""
    from integrations.asana.client import client_for as asana_client
    from integrations.sage100.client import client_for as sage_client

    return asana_client(tenant.asana), sage_client(tenant.sage100)


def _retry_later(func: str, *args: Any, delay: float | None, name: str) -> None:
    """One pending retry per record (a fired one, kept by django-q2, does not count: retries.py)."""
    schedule_retry(f"{MODULE}.{func}", *args, delay=max(delay or 30.0, 5.0), name=name)


def _flow(flow_id: int, kind: str) -> Flow | None:
    return Flow.objects.select_related("tenant").filter(pk=flow_id, kind=kind, enabled=True).first()


def process_purchase_request(flow_id: int, task_gid: str) -> str:
    from integrations.flows.purchase_request_orders import process_purchase_request as process

    flow = _flow(flow_id, Flow.Kind.ASANA_PURCHASE_REQUESTS)
    if flow is None:
        return "flow disabled or gone"
    asana, sage = clients_for(flow.tenant)
    try:
        return process(flow, str(task_gid), asana=asana, sage=sage)
    except errors.RetryableError as exc:
        _retry_later(
            "process_purchase_request",
            flow_id,
            str(task_gid),
            delay=exc.retry_after,
            name=f"sage-pr-retry:{flow_id}:{task_gid}",
        )
        return f"retrying later: {exc}"


def handle_task_change(flow: Flow, task_gid: str, *, clients=None, inbound_event=None, task=None) -> str:
    """The Asana webhook dispatch point (integrations.asana.webhooks.EVENT_HANDLERS) for this flow kind."""
    from integrations.flows.purchase_request_orders import process_purchase_request as process

    asana, sage = clients_for(flow.tenant)
    if clients is not None:
        asana = clients.asana
    try:
        return process(flow, task_gid, asana=asana, sage=sage, inbound_event=inbound_event)
    except errors.RetryableError as exc:
        # The event is done with; this task owns the retry (the event worker would re-read the task).
        _retry_later(
            "process_purchase_request",
            flow.pk,
            task_gid,
            delay=exc.retry_after,
            name=f"sage-pr-retry:{flow.pk}:{task_gid}",
        )
        return f"purchase request: retrying later ({exc})"


def _cursor(flow: Flow, suffix: str = "") -> Cursor:
    cursor, _ = Cursor.objects.get_or_create(tenant=flow.tenant, stream=f"{flow.kind}:{flow.pk}{suffix}")
    return cursor


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def poll_purchase_requests(flow_id: int, *, dry_run: bool = False, clients: tuple | None = None) -> str:
    """Tasks modified since the cursor (minus an overlap), then every link still `creating`.

    The cursor never passes a task whose processing failed with a retryable error: it stops just before
    the earliest such task, so the next pass sees it again."""
    from integrations.flows.purchase_request_orders import PR_TASK_FIELDS, create_po
    from integrations.flows.purchase_request_orders import process_purchase_request as process

    flow = _flow(flow_id, Flow.Kind.ASANA_PURCHASE_REQUESTS)
    if flow is None:
        return "flow disabled or gone"
    asana, sage = clients or clients_for(flow.tenant)
    cursor = _cursor(flow)
    since = _parse(cursor.value)
    started = timezone.now()
    outcomes: dict[str, int] = {}
    failed_at: list[datetime] = []
    newest = since
    tasks = asana.iter_project_tasks(
        flow.asana_project_gid, modified_since=(since - OVERLAP) if since else None, fields=PR_TASK_FIELDS
    )
    for task in tasks:
        modified = _parse(task.get("modified_at")) or started
        try:
            text = process(flow, task["gid"], asana=asana, sage=sage, task=task, dry_run=dry_run)
        except errors.RetryableError as exc:
            failed_at.append(modified)
            text = f"retrying: {exc}"
        outcomes[text.split(":")[0]] = outcomes.get(text.split(":")[0], 0) + 1
        newest = max(newest, modified) if newest else modified
    if not dry_run:
        for link in RecordLink.objects.filter(flow=flow, state=RecordLink.State.CREATING):
            if not link.approved_snapshot.get("payload"):
                continue
            try:
                outcomes[create_po(flow, link, asana=asana, sage=sage).split(" ")[-1]] = 1
            except errors.RetryableError:
                outcomes["still retrying"] = outcomes.get("still retrying", 0) + 1
        target = min(failed_at) - timedelta(microseconds=1) if failed_at else newest
        if target and (since is None or target > since):
            Cursor.objects.filter(pk=cursor.pk).update(value=target.isoformat())
    return ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items())) or "nothing to do"


def poll_po_status(
    flow_id: int,
    *,
    reconcile: bool | None = None,
    clients: tuple | None = None,
    trigger: str = "",
    triggered_by: str = "",
) -> str:
    from integrations.flows.sage_po_status import poll_changed_pos

    flow = _flow(flow_id, Flow.Kind.SAGE100_PO_STATUS)
    if flow is None:
        return "flow disabled or gone"
    from audit.models import SyncRun

    # Every pass is a run (the dashboard's "last successful pass" reads it), scheduled or not.
    run = SyncRun.objects.create(
        tenant=flow.tenant, flow=flow, trigger=trigger or SyncRun.Trigger.SCHEDULE, triggered_by=triggered_by
    )
    asana, sage = clients or clients_for(flow.tenant)
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
    out = []
    for flow in Flow.objects.filter(
        enabled=True, tenant__active=True, kind=Flow.Kind.ASANA_PURCHASE_REQUESTS
    ):
        try:
            out.append(f"{flow}: {poll_purchase_requests(flow.pk)}")
        except errors.ConnectorError as exc:
            # The listing failed (a 429, Asana down): the cursor did not move, the next pass covers it;
            # the other flows and tenants are polled regardless.
            log.warning("purchase-request poll of %s stopped: %s", flow, exc)
            out.append(f"{flow}: not polled, the next pass retries ({exc})")
    for flow in Flow.objects.filter(enabled=True, tenant__active=True, kind=Flow.Kind.SAGE100_PO_STATUS):
        out.append(f"{flow}: {poll_po_status(flow.pk)}")
    return "; ".join(out) or "no Sage 100 flows"


def ensure_schedules(minutes: int = 2) -> list[str]:
    """Idempotent: the purchase-request catch-up and PO status poll every `minutes` minutes."""
    from django_q.models import Schedule

    _, created = Schedule.objects.update_or_create(
        name="sage100-poll",
        defaults={
            "func": f"{MODULE}.poll_all",
            "schedule_type": Schedule.MINUTES,
            "minutes": minutes,
            "repeats": -1,
        },
    )
    return [f"sage100-poll: {'created' if created else 'kept'}"]
