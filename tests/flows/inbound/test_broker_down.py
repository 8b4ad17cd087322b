"""Broker unreachable: a verified delivery is stored and answered 200, and the every-minute sweep
queues it once the broker is back (issue 17); the bill is released once."""

from __future__ import annotations

import django_q.tasks
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from audit.models import InboundEvent
from integrations.flows.inbound.events import requeue_stuck_events
from tests.flows.inbound.harness import World, world  # noqa: F401
from tests.flows.inbound.test_stuck_events import registered, release_calls  # noqa: F401


def broker_down(*_args, **_kwargs):
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_broker_down_answers_200_stores_the_event_and_the_sweep_processes_it_once(
    registered: World,  # noqa: F811
    monkeypatch,
):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 410.0)
    gid, _ = w.bill_task(bill)
    w.clock.now += 5
    w.approve(gid)
    answers = w.record_answers()
    with monkeypatch.context() as m:
        m.setattr(django_q.tasks, "async_task", broker_down)
        w.asana.deliver_pending_events()
        assert answers and set(answers) == {200}  # durable, so acknowledged: Asana does not retry
        event = InboundEvent.objects.get(status=InboundEvent.Status.RECEIVED)
        assert "broker was unreachable" in event.status_reason
        # Still down at the next sweep: nothing lost, nothing processed, the row waits.
        assert "still waiting" in requeue_stuck_events()
        assert InboundEvent.objects.get(pk=event.pk).status == InboundEvent.Status.RECEIVED
    assert release_calls(w) == 0

    # The broker is back: the next minute's sweep queues it and the worker runs it (sync mode).
    assert requeue_stuck_events().startswith("1 event(s) queued after a broker outage")
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.status_reason
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open" and release_calls(w) == 1
    assert requeue_stuck_events().startswith("0 stuck")
    assert release_calls(w) == 1


@pytest.mark.parametrize("status", [InboundEvent.Status.QUEUED])
def test_a_queued_event_is_not_queued_again_by_the_minute_sweep(registered: World, status):  # noqa: F811
    row = InboundEvent.objects.create(source=InboundEvent.Source.ASANA_WEBHOOK, status=status)
    assert requeue_stuck_events().startswith("0 stuck")
    assert InboundEvent.objects.get(pk=row.pk).status == status
