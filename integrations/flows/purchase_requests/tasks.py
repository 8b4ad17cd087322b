"""django-q2 entry points for the purchase-request flow (ids in; orders.py does the work).

    process_purchase_request(flow_id, task_gid)   one task (retries)
    handle_task_change(flow, task_gid, …)         the Asana event dispatch point (registry entry)
    poll_purchase_requests(flow_id)               catch-up: tasks modified since the cursor, plus links
                                                  left in `creating` (agent down, lock, lost answer)
    poll_all()                                    every enabled purchase-request flow (the schedule)
    ensure_schedules()                            the catch-up schedule, idempotently
A retryable error schedules one retry after its retry_after (at least 5 s; base/retries.py); permanent
errors are already in the audit trail and the task ends.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.base import errors, schedules
from integrations.base.retries import schedule_retry
from integrations.flows import clients as flow_clients
from integrations.flows.clients import Clients
from integrations.models import Cursor, Flow, RecordLink

log = logging.getLogger(__name__)

MODULE = "integrations.flows.purchase_requests.tasks"
OVERLAP = timedelta(minutes=5)


def _retry_later(func: str, *args: Any, delay: float | None, name: str) -> None:
    """One pending retry per record (a fired one, kept by django-q2, does not count: retries.py)."""
    schedule_retry(f"{MODULE}.{func}", *args, delay=max(delay or 30.0, 5.0), name=name)


def _flow(flow_id: int, kind: str) -> Flow | None:
    return Flow.objects.select_related("tenant").filter(pk=flow_id, kind=kind, enabled=True).first()


def process_purchase_request(flow_id: int, task_gid: str) -> str:
    from integrations.flows.purchase_requests.orders import process_purchase_request as process

    flow = _flow(flow_id, Flow.Kind.ASANA_PURCHASE_REQUESTS)
    if flow is None:
        return "flow disabled or gone"
    clients = flow_clients.clients_for(flow.tenant)
    asana, sage = clients.asana, clients.sage
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
    """The Asana event dispatch point for this flow kind (its registry entry): the event's clients carry
    Asana; Sage comes from the same factory when they do not carry it."""
    from integrations.flows.purchase_requests.orders import process_purchase_request as process

    clients = clients or flow_clients.clients_for(flow.tenant)
    asana = clients.asana
    sage = clients.sage if hasattr(clients, "sage") else flow_clients.clients_for(flow.tenant).sage
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


def poll_purchase_requests(flow_id: int, *, dry_run: bool = False, clients: Clients | None = None) -> str:
    """Tasks modified since the cursor (minus an overlap), then every link still `creating`.

    The cursor never passes a task whose processing failed with a retryable error: it stops just before
    the earliest such task, so the next pass sees it again."""
    from integrations.flows.purchase_requests.orders import PR_TASK_FIELDS, create_po
    from integrations.flows.purchase_requests.orders import process_purchase_request as process

    flow = _flow(flow_id, Flow.Kind.ASANA_PURCHASE_REQUESTS)
    if flow is None:
        return "flow disabled or gone"
    clients = clients or flow_clients.clients_for(flow.tenant)
    asana, sage = clients.asana, clients.sage
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
    return "; ".join(out) or "no purchase-request flows"


def ensure_schedules(minutes: int = 2) -> list[str]:
    """Idempotent: the purchase-request catch-up every `minutes` minutes."""
    return [schedules.ensure("sage100-purchase-requests-poll", f"{MODULE}.poll_all", minutes=minutes)]


def run_once(flow: Flow, actor: str) -> tuple[bool, str]:
    """The catch-up poll now."""
    return True, poll_purchase_requests(flow.pk)
