"""A worker SIGKILLed while it waits for its next task must not freeze the rest of its cluster.

django-q2's workers read one multiprocessing queue; the one waiting for a task holds the queue's
reader lock. These tests kill such a reader for real (forked processes, as the cluster forks them)
and check that the lock is taken back — and, as a control, that without the guard it is not.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.core.management import get_commands
from django_q import cluster as q_cluster
from django_q.queues import Queue

from integrations.base.qcluster import (
    GuardedCluster,
    GuardedQueue,
    GuardedSentinel,
    OwnedLock,
    guard_queue,
    release_locks_of,
)

CTX = q_cluster.get_mp_context()  # fork, as django-q2's cluster


def _reader(queue, results):
    """A worker's loop: take a task, hand back a result."""
    for task in iter(queue.get, "STOP"):
        results.put((os.getpid(), task))


def _wait_for_holder(lock: OwnedLock, pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while lock.holder != pid:
        assert time.monotonic() < deadline, f"pid {pid} never took the lock (holder {lock.holder})"
        time.sleep(0.01)


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(5)
    assert not proc.is_alive()


def test_an_owned_lock_names_its_holder_and_is_released_only_for_it():
    lock = OwnedLock()
    assert lock.holder == 0
    assert lock.acquire()
    assert lock.holder == os.getpid()
    assert not lock.release_for(os.getpid() + 1)  # someone else's death frees nothing
    assert not lock.acquire(True, 0.05)  # still held
    assert lock.release_for(os.getpid())
    assert lock.holder == 0
    with lock:
        assert lock.holder == os.getpid()
    assert lock.holder == 0 and lock.acquire(False)
    lock.release()


def test_a_reader_killed_while_waiting_leaves_its_lock_with_a_plain_queue():
    """The failure being fixed: the other reader never gets the task (django-q2 as shipped)."""
    queue, results = Queue(), Queue()
    idle = CTX.Process(target=_reader, args=(queue, results))
    idle.start()
    time.sleep(0.5)  # it is now blocked inside get(), holding the reader lock
    _kill(idle)
    other = CTX.Process(target=_reader, args=(queue, results))
    other.start()
    try:
        queue.put("task-1")
        with pytest.raises(Exception):  # noqa: B017 - queue.Empty: nobody could read it
            results.get(timeout=2)
    finally:
        other.kill()
        other.join()


def test_a_reader_killed_while_waiting_has_its_lock_released_and_the_next_reader_goes_on():
    queue, results = guard_queue(Queue()), guard_queue(Queue())
    idle = CTX.Process(target=_reader, args=(queue, results))
    idle.start()
    _wait_for_holder(queue._rlock, idle.pid)
    _kill(idle)
    assert queue._rlock.holder == idle.pid  # the dead process holds it
    assert release_locks_of(idle.pid, queue, results) == ["task queue reader lock"]
    assert release_locks_of(idle.pid, queue, results) == []  # once
    readers = [CTX.Process(target=_reader, args=(queue, results)) for _ in range(2)]
    for proc in readers:
        proc.start()
    try:
        for n in range(20):
            queue.put(f"task-{n}")
        got = sorted(results.get(timeout=10)[1] for _ in range(20))
        assert got == sorted(f"task-{n}" for n in range(20))  # every task read once, none garbled
    finally:
        for _ in readers:
            queue.put("STOP")
        for proc in readers:
            proc.join(10)
            assert proc.exitcode == 0


def test_the_sentinel_frees_a_dead_workers_locks_before_it_respawns_it(monkeypatch):
    """GuardedSentinel.reincarnate on a worker killed while waiting (spawning itself stubbed)."""
    sentinel = GuardedSentinel.__new__(GuardedSentinel)  # no broker, no guard loop
    sentinel.task_queue, sentinel.result_queue = GuardedQueue(), GuardedQueue()
    sentinel._retiring = set()
    idle = CTX.Process(target=_reader, args=(sentinel.task_queue, sentinel.result_queue))
    idle.start()
    _wait_for_holder(sentinel.task_queue._rlock, idle.pid)
    sentinel.pool = [idle]
    respawned = []
    monkeypatch.setattr(q_cluster.Sentinel, "reincarnate", lambda self, p: respawned.append(p))
    _kill(idle)
    sentinel.reincarnate(idle)
    assert respawned == [idle]
    assert sentinel.task_queue._rlock.holder == 0
    assert sentinel.task_queue._rlock.acquire(True, 1)  # free again
    sentinel.task_queue._rlock.release()


def test_manage_py_qcluster_runs_the_guarded_cluster():
    from integrations.management.commands import qcluster

    assert get_commands()["qcluster"] == "integrations"
    assert qcluster.GuardedCluster is GuardedCluster
    # The swap for the sentinel's fork is undone afterwards: other users of django_q are untouched.
    assert q_cluster.Sentinel is not GuardedSentinel
