"""The receive path's enqueue (base/enqueue.enqueue_task) as in production — django-q2 not in sync mode:
the package on the broker is the one async_task puts there, the cluster (the guarded pusher, a
django-q2 worker, the monitor) runs it, and a broker that refuses connections still gets the delivery
a 200 and a `received` row that the sweep queues once the broker is back.

The suite runs django-q2 in sync mode (tasks run inline, through async_task); these tests switch it off,
so tasks go to the configured broker: the ORM, or Redis when REDIS_URL is set.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from multiprocessing import Value

import django_q.tasks
import pytest
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import Task
from django_q.signing import SignedPackage

import connector_site.broker
from audit.models import InboundEvent
from integrations.base import enqueue, qcluster
from integrations.flows.common import task_events
from integrations.flows.documents import queue as documents_queue
from integrations.flows.inbound.events import requeue_stuck_events
from tests.flows.inbound.harness import World, world  # noqa: F401
from tests.flows.inbound.test_stuck_events import registered, release_calls  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
RAN: list[int] = []


def record(n: int) -> int:
    """The task of the first test."""
    RAN.append(n)
    return 2 * n


@pytest.fixture
def cluster_mode(monkeypatch):
    """Q_CLUSTER["sync"] off, as in production: a queued task waits on the broker for the cluster."""
    import django_q.worker

    monkeypatch.setattr(Conf, "SYNC", False)
    # The cluster's processes name themselves; this one is pytest.
    monkeypatch.setattr(django_q.worker, "setproctitle", None)
    monkeypatch.setattr(qcluster, "setproctitle", None)
    enqueue._brokers.clear()
    RAN.clear()
    yield
    enqueue._brokers.clear()
    get_broker().purge_queue()


def run_cluster_once() -> None:
    """`manage.py qcluster` over what the broker holds now, in this process: the guarded pusher moves
    every task to the task queue, a django-q2 worker runs them, the monitor saves each result and
    acknowledges it on the broker."""
    from django_q.monitor import monitor
    from django_q.worker import worker

    broker = get_broker()
    tasks, results, stop = qcluster.GuardedQueue(), qcluster.GuardedQueue(), threading.Event()
    stop.set()  # the pusher stops after one read of the broker (one task from Redis, a batch from the ORM)
    while broker.queue_size():
        qcluster.guarded_pusher(tasks, stop, broker)
    tasks.put(qcluster.STOP)
    worker(tasks, results, Value("f", -1))
    results.put(qcluster.STOP)
    monitor(results, broker)


def test_a_task_enqueued_is_run_by_the_cluster_like_one_from_async_task(cluster_mode):
    task_id = enqueue.enqueue_task(f"{__name__}.record", 21, task_name="fast-21")
    django_q.tasks.async_task(f"{__name__}.record", 4, task_name="async-4")
    assert RAN == [] and get_broker().queue_size() == 2  # on the broker, not run inline
    run_cluster_once()
    assert sorted(RAN) == [4, 21]
    done = Task.objects.get(name="fast-21")
    assert done.id == task_id and done.success and done.result == 42 and done.args == (21,)
    assert Task.objects.get(name="async-4").success
    assert get_broker().queue_size() == 0  # acknowledged (ORM) or popped (Redis): nothing runs twice


class Capture:
    """A broker that keeps what it is given."""

    list_key = "capture"

    def __init__(self) -> None:
        self.packages: list[str] = []

    def enqueue(self, package: str) -> int:
        self.packages.append(package)
        return len(self.packages)


@pytest.mark.parametrize(
    "queue, func, name",
    [
        (task_events.enqueue_asana_event, task_events.ASANA_EVENT_TASK, "asana-event-17"),
        (documents_queue.enqueue_push_event, documents_queue.PUSH_EVENT_TASK, "acumatica-push-17"),
    ],
)
@pytest.mark.parametrize("ack_failures", [False, True])
def test_the_package_is_the_one_async_task_puts(cluster_mode, monkeypatch, queue, func, name, ack_failures):
    capture = Capture()
    monkeypatch.setattr(enqueue, "broker", lambda: capture)
    monkeypatch.setattr(django_q.tasks, "get_broker", lambda *_a, **_k: capture)
    monkeypatch.setattr(Conf, "ACK_FAILURES", ack_failures)
    queue(17)
    django_q.tasks.async_task(func, 17, task_name=name)
    ours, theirs = (SignedPackage.loads(p) for p in capture.packages)
    for task in (ours, theirs):
        assert re.fullmatch(r"[0-9a-f]{32}", task.pop("id"))
        started = task.pop("started")
        assert isinstance(started, datetime) and started.tzinfo is not None
    assert ours == theirs
    assert ours["name"] == name and ours["func"] == func and ours["args"] == (17,)


def test_in_sync_mode_it_is_async_task(monkeypatch):
    """The suite's sync mode goes through async_task, so tests that replace it see every call."""
    calls = []
    monkeypatch.setattr(django_q.tasks, "async_task", lambda *a, **k: calls.append((a, k)))
    task_events.enqueue_asana_event(5)
    assert calls == [((task_events.ASANA_EVENT_TASK, 5), {"task_name": "asana-event-5"})]


def approved_bill(w: World) -> str:
    bill = w.acumatica.add_bill("ABCCONCRETE", 410.0)
    gid, _ = w.bill_task(bill)
    w.clock.now += 5
    w.approve(gid)
    return bill["ReferenceNbr"]


def test_a_delivery_is_queued_on_the_broker_and_the_cluster_processes_it(
    registered: World,  # noqa: F811
    cluster_mode,
):
    w = registered
    ref = approved_bill(w)
    w.asana.deliver_pending_events()
    event = InboundEvent.objects.get(status=InboundEvent.Status.QUEUED)
    assert release_calls(w) == 0  # stored and queued; the cluster runs it
    run_cluster_once()
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.status_reason
    assert w.bill(ref)["Status"] == "Open" and release_calls(w) == 1
    assert Task.objects.get(name=f"asana-event-{event.pk}").success


def test_a_broker_refusing_connections_gets_a_200_and_the_sweep_queues_the_row_later(
    registered: World,  # noqa: F811
    cluster_mode,
    monkeypatch,
):
    w = registered
    ref = approved_bill(w)
    answers = w.record_answers()
    with monkeypatch.context() as m:
        # Redis with nothing listening (port 1): the client's connect is refused.
        m.setattr(Conf, "BROKER_CLASS", "connector_site.broker.PooledRedisBroker")
        m.setattr(Conf, "REDIS", "redis://127.0.0.1:1/0")
        connector_site.broker._clients.clear()
        enqueue._brokers.clear()
        w.asana.deliver_pending_events()
        assert answers and set(answers) == {200}
        event = InboundEvent.objects.get(status=InboundEvent.Status.RECEIVED)
        assert "broker was unreachable (ConnectionError)" in event.status_reason
        assert "still waiting" in requeue_stuck_events()
    connector_site.broker._clients.clear()
    enqueue._brokers.clear()
    assert release_calls(w) == 0
    assert requeue_stuck_events().startswith("1 event(s) queued after a broker outage")
    assert InboundEvent.objects.get(pk=event.pk).status == InboundEvent.Status.QUEUED
    run_cluster_once()
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.status_reason
    assert w.bill(ref)["Status"] == "Open" and release_calls(w) == 1
