"""Inbound events never queued, or whose task never finished, are queued again (django-q2 entry point,
every minute).

A receiver that stored an event but could not reach the broker leaves it `received` and answers 200
(the row is durable; base/receiver.dispatch): this sweep enqueues every such row on its next run, so
an outage of the broker delays an event by about a minute once it is back.

A webhook or push view stores the event as `queued` and enqueues its task; if the worker running it dies
(a killed process, a host restart) or the broker loses the message (Redis pops it before the work is
done), nothing else would ever pick the row up: it would sit `queued` on the dashboard and its change
would wait for the next catch-up poll. Processing an event is idempotent (events are hints: the worker
re-reads the source and every write goes through the RecordLink), so queueing it again is safe.

An Asana event with a retry pending (an `asana-event-<id>` schedule, base/retries.py) is not stuck; it is
left alone.
A task may also just be waiting in a long queue (a burst, a backfill): each requeue waits twice as long
as the one before (15, 30, 60… minutes), and after MAX_REQUEUES the event is marked failed with the
reason, so a poison event cannot loop forever. A duplicate task for an event is harmless: the first
to finish marks it processed and the others find nothing to do.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from audit.models import InboundEvent
from integrations.base import schedules
from integrations.flows.common import task_events
from integrations.flows.documents import queue as documents_queue

log = logging.getLogger(__name__)
STUCK_AFTER = timedelta(minutes=15)  # longer than a task may run (Q_TIMEOUT) plus the broker's retry
MAX_REQUEUES = 5
REQUEUED = re.compile(r"requeued (\d+)/\d+ at (\S+):")


def _enqueue(event: InboundEvent) -> None:
    if event.source == InboundEvent.Source.ACUMATICA_PUSH:
        documents_queue.enqueue_push_event(event.pk)
    else:
        task_events.enqueue_asana_event(event.pk)


def queue_unqueued_events(limit: int = 1000) -> tuple[int, int]:
    """(queued, still waiting): `received` rows were stored while the broker was unreachable."""
    queued = waiting = 0
    rows = InboundEvent.objects.filter(
        status=InboundEvent.Status.RECEIVED,
        source__in=[InboundEvent.Source.ASANA_WEBHOOK, InboundEvent.Source.ACUMATICA_PUSH],
    ).order_by("pk")[:limit]
    for event in rows:
        try:
            _enqueue(event)
        except Exception as exc:  # noqa: BLE001 - still unreachable: the next run tries again
            log.warning("broker still unreachable (%s): %s event(s) wait", type(exc).__name__, len(rows))
            waiting = len(rows) - queued
            break
        # Conditional: a worker that already ran it (sync mode, a fast worker) has moved it on.
        InboundEvent.objects.filter(pk=event.pk, status=InboundEvent.Status.RECEIVED).update(
            status=InboundEvent.Status.QUEUED, status_reason="queued by the sweep after a broker outage"
        )
        queued += 1
    return queued, waiting


def requeue_stuck_events(now=None) -> str:
    from django_q.models import Schedule

    now = now or timezone.now()
    late, waiting = queue_unqueued_events()
    if waiting:
        return f"{late} event(s) queued after a broker outage, {waiting} still waiting for the broker"
    stuck = InboundEvent.objects.filter(
        status=InboundEvent.Status.QUEUED,
        source__in=[InboundEvent.Source.ASANA_WEBHOOK, InboundEvent.Source.ACUMATICA_PUSH],
        received_at__lt=now - STUCK_AFTER,
    ).order_by("pk")
    requeued = failed = 0
    for event in stuck:
        retry = Q(name=f"asana-event-{event.pk}") | Q(name__startswith=f"asana-event-{event.pk}@")
        if Schedule.objects.filter(retry).exclude(repeats=0).exists():
            continue  # a retry is scheduled: not stuck
        match = REQUEUED.search(event.status_reason or "")
        count = int(match.group(1)) if match else 0
        if match and datetime.fromisoformat(match.group(2)) > now - STUCK_AFTER * 2**count:
            continue  # queued again not long ago: give its task time to run
        if count >= MAX_REQUEUES:
            InboundEvent.objects.filter(pk=event.pk).update(
                status=InboundEvent.Status.FAILED,
                status_reason=f"its task never finished after {count} requeues (worker lost each time)",
                processed_at=now,
            )
            failed += 1
            continue
        InboundEvent.objects.filter(pk=event.pk).update(
            status_reason=f"requeued {count + 1}/{MAX_REQUEUES} at {now.isoformat()}: its task did not finish"
        )
        _enqueue(event)
        requeued += 1
    head = f"{late} event(s) queued after a broker outage; " if late else ""
    return head + f"{requeued} stuck event(s) queued again, {failed} given up"


def ensure_schedules() -> list[str]:
    # every minute: a broker outage delays an event by about this much once it is back
    func = "integrations.flows.inbound.events.requeue_stuck_events"
    return [schedules.ensure("requeue-stuck-events", func, minutes=1)]
