"""django-q2 entry points for the Acumatica bills / purchase orders → Asana flows. They take ids.

    poll_flow(flow_id)                                  one polling pass (scheduled per flow)
    process_document(flow_id, doc_type, number, event_id=None)   one document, re-read by key
    process_push_event(event_id)                        the documents named by a stored push
    check_drift(flow_id)                                the mapping drift check (scheduled)
    ensure_schedules()                                  create/refresh the schedules above
A retryable error reschedules the same call once, after the error's retry_after (the broker itself
never blind-retries: Q_CLUSTER max_attempts=1); a permanent one is already in the audit trail.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.utils import timezone

from integrations.base import errors, schedules
from integrations.base.retries import schedule_retry
from integrations.models import Flow

log = logging.getLogger(__name__)

DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)
MODULE = "integrations.flows.documents.tasks"
DEFAULT_RETRY = 30.0
DRIFT_EVERY_MINUTES = 60


def _schedule_once(func: str, *args: Any, delay: float, name: str) -> None:
    """One pending retry per document / flow (a fired one, kept by django-q2, does not count: retries.py)."""
    schedule_retry(f"{MODULE}.{func}", *args, delay=max(1.0, delay), name=name)


def schedule_document(flow_id: int, doc_type: str, number: str, delay: float = DEFAULT_RETRY) -> None:
    _schedule_once(
        "process_document",
        flow_id,
        doc_type,
        number,
        delay=delay,
        name=f"retry:{flow_id}:{doc_type}/{number}",
    )


def _flow(flow_id: int) -> Flow | None:
    flow = Flow.objects.select_related("tenant").filter(pk=flow_id, kind__in=DOCUMENT_KINDS).first()
    if flow is None or not flow.enabled or not flow.tenant.active:
        return None
    return flow


def poll_flow(flow_id: int, trigger: str = "schedule", triggered_by: str = "") -> str:
    from integrations.flows.documents.poll import poll
    from integrations.flows.documents.sync import DocumentSync

    flow = _flow(flow_id)
    if flow is None:
        return "flow disabled or not a documents flow"
    try:
        result = poll(
            DocumentSync(flow, actor=triggered_by or "system"),
            trigger=trigger,
            triggered_by=triggered_by,
            retry_record=lambda t, n, d: schedule_document(flow_id, t, n, d),
        )
    except errors.RetryableError as exc:
        _schedule_once("poll_flow", flow_id, delay=exc.retry_after or DEFAULT_RETRY, name=f"repoll:{flow_id}")
        return f"pass stopped, retrying: {exc}"
    return json.dumps(result.counts)


def process_document(flow_id: int, doc_type: str, number: str, event_id: int | None = None) -> str:
    from audit.models import InboundEvent
    from integrations.flows.documents.sync import DocumentSync

    flow = _flow(flow_id)
    if flow is None:
        return "flow disabled or not a documents flow"
    event = InboundEvent.objects.filter(pk=event_id).first() if event_id else None
    try:
        outcome = DocumentSync(flow).process(doc_type, number, event=event)
    except errors.RetryableError as exc:
        schedule_document(flow_id, doc_type, number, exc.retry_after or DEFAULT_RETRY)
        return f"retrying: {exc}"
    return f"{outcome.plan.action}: {outcome.status}"


def process_push_event(event_id: int) -> str:
    """Each key in a push is a hint: the document is re-read by key (rows only in `Deleted` too)."""
    from audit.models import InboundEvent
    from integrations.acumatica.push import document_keys

    event = InboundEvent.objects.select_related("tenant").filter(pk=event_id).first()
    if event is None or event.status not in (InboundEvent.Status.QUEUED, InboundEvent.Status.RECEIVED):
        return "nothing to do"
    try:
        payload = json.loads(event.body_text)
    except ValueError:
        payload = {}
    flows = Flow.objects.filter(tenant=event.tenant, kind__in=DOCUMENT_KINDS, enabled=True)
    done: list[str] = []
    for flow in flows:
        for doc_type, number in document_keys(payload, flow.kind):
            done.append(f"{doc_type}/{number}: " + process_document(flow.pk, doc_type, number, event.pk))
    status = InboundEvent.Status.PROCESSED if done else InboundEvent.Status.IGNORED
    reason = "; ".join(done)[:2000] if done else "no bills or purchase orders of an enabled flow in it"
    InboundEvent.objects.filter(pk=event.pk).update(
        status=status, status_reason=reason, processed_at=timezone.now()
    )
    return reason


def check_drift(flow_id: int) -> str:
    from integrations.asana.client import client_for
    from mappings.drift import check_flow

    flow = _flow(flow_id)
    if flow is None:
        return "flow disabled"
    try:
        report = check_flow(flow, client_for(flow.tenant.asana))
    except errors.ConnectorError as exc:  # a 429 or an outage: the next hourly check runs again
        log.warning("drift check of %s not run: %s", flow, exc)
        return f"drift check not run, the next one retries: {exc}"
    return report.summary()


def ensure_schedules() -> list[str]:
    """One polling schedule per enabled documents flow (its poll interval) and an hourly drift check."""
    made = []
    for flow in Flow.objects.filter(kind__in=DOCUMENT_KINDS, enabled=True, tenant__active=True):
        for func, minutes in (
            ("poll_flow", flow.poll_interval_minutes),
            ("check_drift", DRIFT_EVERY_MINUTES),
        ):
            made.append(
                schedules.ensure(f"{func}:{flow.pk}", f"{MODULE}.{func}", minutes=minutes, args=flow.pk)
            )
    return made


def run_once(flow: Flow, actor: str) -> tuple[bool, str]:
    """One polling pass now (it records its run): worked when the run succeeded or partly did."""
    from audit.models import SyncRun

    answer = poll_flow(flow.pk, SyncRun.Trigger.MANUAL, actor)
    run = SyncRun.objects.filter(flow=flow).order_by("-started_at", "-pk").first()
    ok = run is not None and run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)
    return ok, answer if ok or run is None else (run.message or answer)
