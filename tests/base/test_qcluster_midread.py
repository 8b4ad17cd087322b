"""A worker SIGKILLed part-way through reading a task must not throw its cluster out of step.

The killed worker read the 4-byte length of the next message from the task queue's pipe, not its
body. Giving its reader lock back would leave the next reader starting in the middle of that body
("Ran out of input"); the sentinel retires the queue instead, and every task — the one that was
being read included — is still run, exactly once. A real cluster: django-q2's workers under the
GuardedSentinel, the Redis broker (it has no acknowledgement: a task in the pipe exists nowhere else).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections import Counter
from multiprocessing.reduction import ForkingPickler as _ForkingPickler

import pytest
from django.utils import timezone
from django_q import cluster as q_cluster
from django_q.conf import Conf
from django_q.signing import SignedPackage

from integrations.base.qcluster import STOP, GuardedQueue, GuardedSentinel, framed_size

needs_redis = pytest.mark.skipif(not Conf.REDIS, reason="needs REDIS_URL (the Redis broker)")

CTX = q_cluster.get_mp_context()


def _redis():
    import redis

    return redis.from_url(Conf.REDIS)


def record(key: str, n: int) -> int:
    """The task: say it ran."""
    _redis().rpush(key, n)
    return n


def _monitor(result_queue, broker=None):
    """Stands for django-q2's monitor (which saves results with the ORM): counts the results."""
    for task in iter(result_queue.get, STOP):
        _redis().rpush(f"{task['args'][0]}:results", task["name"])


def _dies_mid_read(task_queue, result_queue, timer, timeout):
    """A worker killed after it read the length of a task and before it read the task itself."""
    while not task_queue._rlock.acquire(True, 0.05):
        pass
    header = os.read(task_queue._reader.fileno(), 4)
    _redis().rpush(f"sabotage:{os.getppid()}", int.from_bytes(header, "big"))
    os.kill(os.getpid(), signal.SIGKILL)


class SabotagedSentinel(GuardedSentinel):
    def spawn_monitor(self):
        return self.spawn_process(_monitor, self.result_queue, self.broker)

    def spawn_cluster(self):
        super().spawn_cluster()
        timer = CTX.Value("f", -1)
        victim = self.spawn_process(_dies_mid_read, self.task_queue, self.result_queue, timer, self.timeout)
        victim.timer = timer
        self.pool.append(victim)  # a worker of the pool: its death is the sentinel's to handle


def _task(key: str, n: int) -> str:
    return SignedPackage.dumps(
        {
            "id": uuid.uuid4().hex,
            "name": f"task-{n}",
            "func": f"{__name__}.record",
            "args": (key, n),
            "kwargs": {},
            "started": timezone.now(),
        }
    )


def _reads(queue, nbytes, ready):
    """A reader that takes the lock, reads `nbytes` straight off the pipe (0: none), and waits."""
    queue._rlock.acquire()
    if nbytes:
        os.read(queue._reader.fileno(), nbytes)
    ready.set()
    time.sleep(60)


@pytest.mark.parametrize(
    ("before", "read", "after", "whole"),
    [
        (0, 0, 0, True),  # blocked on an empty pipe: the idle worker
        (0, 0, 3, True),  # killed before it read, then tasks queued: all of them still whole
        (2, 0, 0, True),  # died holding the lock before its first byte, tasks waiting
        (2, 4, 0, False),  # read a length, not its body
        (2, 20, 1, False),  # read part of a body
        (1, "all", 0, False),  # read a whole message it never counted: handed back, not lost
    ],
)
def test_the_sentinel_tells_a_reader_dead_between_messages_from_one_dead_mid_read(before, read, after, whole):
    queue = GuardedQueue()
    task = {"id": "x" * 40, "args": ("acumatica_bills", "Bill", "000123")}
    for _ in range(before):
        queue.put(task)
    deadline = time.monotonic() + 5
    while queue.written < before:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    nbytes = framed_size(_ForkingPickler.dumps(task)) if read == "all" else read
    ready = CTX.Event()
    reader = CTX.Process(target=_reads, args=(queue, nbytes, ready))
    reader.start()
    assert ready.wait(5)
    os.kill(reader.pid, signal.SIGKILL)
    reader.join(5)
    for _ in range(after):
        queue.put(task)
    while queue.written < before + after:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert queue._rlock.holder == reader.pid
    assert queue.pipe_is_whole() is whole
    if whole:  # and indeed: give the lock back, and every message comes out as it went in
        assert queue._rlock.release_for(reader.pid)
        assert [queue.get(timeout=2) for _ in range(before + after)] == [task] * (before + after)


def _descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def _run_with_a_mid_read_death(wait: float) -> tuple[int, Counter, int]:
    """Start the cluster, queue tasks until the victim has died mid-read, then 20 more; wait up to
    `wait` s for all to run. Returns (tasks queued, runs per task, results seen by the monitor)."""
    from connector_site.broker import PooledRedisBroker

    key = f"midread-{uuid.uuid4().hex[:8]}"
    broker = PooledRedisBroker(list_key=key)
    redis = _redis()
    stop, started = CTX.Event(), CTX.Event()
    sentinel = CTX.Process(target=SabotagedSentinel, args=(stop, started, uuid.uuid4(), broker, 60))
    sentinel.start()
    sabotage = f"sabotage:{sentinel.pid}"
    try:
        assert started.wait(30), "the cluster did not start"
        queued = 0
        for _batch in range(20):  # until the victim has read a length: it waits its turn for the lock
            for _ in range(10):
                queued += 1
                broker.enqueue(_task(key, queued))
            deadline = time.monotonic() + 10
            while not redis.llen(sabotage) and time.monotonic() < deadline:
                time.sleep(0.05)
            if redis.llen(sabotage):
                break
        assert redis.llen(sabotage) == 1, "the victim never read from the task queue"
        assert int(redis.lindex(sabotage, 0)) > 0  # a task's length: its body stayed in the pipe
        for n in range(queued + 1, queued + 21):  # and the cluster goes on taking new tasks
            broker.enqueue(_task(key, n))
        queued += 20
        deadline = time.monotonic() + wait
        while redis.llen(f"{key}:results") < queued and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # nothing runs twice, even late
        ran = Counter(int(n) for n in redis.lrange(key, 0, -1))
        return queued, ran, redis.llen(f"{key}:results")
    finally:
        tree = _descendants(sentinel.pid)
        stop.set()
        sentinel.join(30)
        for pid in [sentinel.pid, *tree]:  # a wedged cluster does not stop by itself
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        sentinel.join(5)
        redis.delete(key, f"{key}:results", sabotage)


@needs_redis
def test_a_worker_killed_mid_read_retires_the_task_queue_and_no_task_is_lost():
    queued, ran, results = _run_with_a_mid_read_death(wait=60)
    assert sorted(ran) == list(range(1, queued + 1)), f"not run: {set(range(1, queued + 1)) - set(ran)}"
    assert set(ran.values()) == {1}, {n: c for n, c in ran.items() if c > 1}
    assert results == queued  # every result reached the monitor


@needs_redis
def test_giving_the_lock_back_after_a_mid_read_death_wedges_the_cluster(monkeypatch):
    """The control: the sentinel as it was (the dead reader's lock released, the pipe kept)."""
    monkeypatch.setattr(GuardedQueue, "pipe_is_whole", lambda self, timeout=2.0: True)
    queued, ran, results = _run_with_a_mid_read_death(wait=15)
    assert len(ran) < queued and results < queued


def test_a_retired_queue_s_pusher_hands_back_what_was_not_read_whole(transactional_db):
    """The ORM broker keeps a task until it is acknowledged: the copy handed back replaces it."""
    import threading

    from django_q.brokers.orm import ORM
    from django_q.models import OrmQ

    from integrations.base.qcluster import guarded_pusher

    broker = ORM(list_key="handback")
    payloads = [_task("handback", n) for n in range(1, 4)]
    for payload in payloads:
        broker.enqueue(payload)
    queue, stop = GuardedQueue(), threading.Event()
    pusher = threading.Thread(target=guarded_pusher, args=(queue, stop, broker))
    pusher.start()
    try:
        deadline = time.monotonic() + 10
        while queue.written < 3:
            assert time.monotonic() < deadline, queue.written
            time.sleep(0.05)
        first = queue.get()
        assert first["name"] == "task-1" and queue.taken == 1
        originals = dict(OrmQ.objects.values_list("payload", "id"))
        queue.retire()
        pusher.join(10)
        assert not pusher.is_alive()
    finally:
        stop.set()
        pusher.join(10)
    rows = {row.payload: row for row in OrmQ.objects.filter(key="handback")}
    assert set(rows) == set(payloads)  # each task once: nothing lost, nothing doubled
    assert rows[payloads[0]].id == originals[payloads[0]]  # read whole: the worker's to acknowledge
    for payload in payloads[1:]:  # not read: a fresh copy, free to be taken at once
        assert rows[payload].id != originals[payload]
        assert rows[payload].lock <= timezone.now()
