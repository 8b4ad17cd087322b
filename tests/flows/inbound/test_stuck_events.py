"""An event whose task was lost (the worker died, the broker dropped the message) is queued again by the
sweep and processed once; one with a retry pending is left alone; a poison event ends failed, visibly."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from audit.models import InboundEvent
from integrations.flows.common import task_events
from integrations.flows.inbound import watchdog
from integrations.flows.inbound.events import (
    MAX_REQUEUES,
    STUCK_AFTER,
    ensure_schedules,
    requeue_stuck_events,
)
from tests.flows.inbound.harness import World, world  # noqa: F401


@pytest.fixture
def registered(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    return world


def release_calls(w: World) -> int:
    return sum(1 for m, p, _ in w.acumatica.request_log if m == "POST" and p.endswith("/Bill/ReleaseBill"))


def approved_but_lost(w: World, monkeypatch) -> InboundEvent:
    bill = w.acumatica.add_bill("ABCCONCRETE", 250.0)
    gid, _ = w.bill_task(bill)
    w.clock.now += 5
    w.approve(gid)
    with monkeypatch.context() as m:
        m.setattr(task_events, "enqueue_asana_event", lambda event_id: None)  # the task never runs
        w.asana.deliver_pending_events()
    event = InboundEvent.objects.get(status=InboundEvent.Status.QUEUED)
    w.bill_ref = bill["ReferenceNbr"]
    return event


def later(minutes: float = 0):
    return timezone.now() + STUCK_AFTER + timedelta(minutes=minutes)


def test_a_lost_event_is_queued_again_and_releases_once(registered: World, monkeypatch):
    w = registered
    event = approved_but_lost(w, monkeypatch)
    assert requeue_stuck_events() == "0 stuck event(s) queued again, 0 given up"  # too recent
    assert release_calls(w) == 0

    assert requeue_stuck_events(now=later(1)).startswith("1 stuck")
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.status_reason
    assert w.bill(w.bill_ref)["Status"] == "Open" and release_calls(w) == 1
    assert requeue_stuck_events(now=later(30)).startswith("0 stuck")  # processed: never again
    assert release_calls(w) == 1


def test_an_event_with_a_retry_pending_is_not_stuck(registered: World, monkeypatch):
    w = registered
    event = approved_but_lost(w, monkeypatch)
    Schedule.objects.create(
        name=f"asana-event-{event.pk}@120000000000",
        func="integrations.flows.dispatch.process_asana_event",
        args=f"{event.pk},2",
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=later(5),
    )
    assert requeue_stuck_events(now=later(1)).startswith("0 stuck")
    assert InboundEvent.objects.get(pk=event.pk).status == InboundEvent.Status.QUEUED


def test_an_event_whose_task_is_lost_every_time_ends_failed_with_the_reason(registered: World, monkeypatch):
    w = registered
    event = approved_but_lost(w, monkeypatch)
    monkeypatch.setattr(task_events, "enqueue_asana_event", lambda event_id: None)
    at = later(1)
    for n in range(1, MAX_REQUEUES + 1):
        assert requeue_stuck_events(now=at).startswith("1 stuck")
        wait = STUCK_AFTER * 2**n  # each requeue waits twice as long: a long queue is not a loss
        assert requeue_stuck_events(now=at + wait - timedelta(minutes=1)).startswith("0 stuck")
        at += wait + timedelta(minutes=1)
    assert requeue_stuck_events(now=at).endswith("1 given up")
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.FAILED and "never finished" in event.status_reason
    assert release_calls(w) == 0


def test_the_sweep_has_a_schedule(db):
    ensure_schedules()
    ensure_schedules()
    schedule = Schedule.objects.get(name="requeue-stuck-events")
    assert schedule.func == "integrations.flows.inbound.events.requeue_stuck_events" and schedule.minutes == 1
