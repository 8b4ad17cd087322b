"""A queue's size is the pipe's own count, not django-q2's lock-guarded counter.

django-q2 bumps a shared counter, under a process-shared lock, after handing each message to the
process's feeder thread. A worker killed at that moment either holds the lock for good (every put and
get of the cluster waits on it: a wedge) or leaves the count one too high for a result that never
reached the pipe (the cluster reports "working" for ever). The GuardedQueue counts what was written
whole and read whole instead, and never takes that lock.
"""

from __future__ import annotations

import os
import signal
import time

from django_q import cluster as q_cluster

from integrations.base.qcluster import GuardedQueue

CTX = q_cluster.get_mp_context()


def _settle(queue: GuardedQueue, want: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while queue.qsize() != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return queue.qsize()


def test_the_size_is_what_is_in_the_pipe():
    queue = GuardedQueue()
    assert queue.empty() and queue.qsize() == 0
    for n in range(3):
        queue.put({"n": n})
    assert _settle(queue, 3) == 3 and not queue.empty()
    assert queue.get() == {"n": 0}
    assert queue.qsize() == 2
    assert [queue.get(), queue.get()] == [{"n": 1}, {"n": 2}]
    assert queue.empty()


def test_a_counter_lock_held_by_a_dead_process_wedges_nothing():
    queue = GuardedQueue()
    holder = CTX.Process(target=_take_the_counter_lock_and_hang, args=(queue,))
    holder.start()
    time.sleep(0.3)
    os.kill(holder.pid, signal.SIGKILL)  # dies holding django-q2's counter lock
    holder.join(5)
    assert not queue.size.count.get_lock().acquire(timeout=0.1), "the dead process holds it"

    putter = CTX.Process(target=_put_two, args=(queue,))
    putter.start()
    putter.join(5)
    assert putter.exitcode == 0, "a put waited on the dead process's lock"
    assert _settle(queue, 2) == 2
    assert [queue.get(), queue.get()] == ["a", "b"] and queue.empty()


def test_a_message_a_killed_process_never_wrote_is_never_counted():
    queue = GuardedQueue()
    writer = CTX.Process(target=_put_then_die_before_the_feeder_writes, args=(queue,))
    writer.start()
    writer.join(5)
    assert writer.exitcode == -signal.SIGKILL
    assert queue.qsize() == 0 and queue.empty(), "a lost message left the queue looking busy"


def _take_the_counter_lock_and_hang(queue: GuardedQueue) -> None:
    queue.size.count.get_lock().acquire()
    time.sleep(60)


def _put_two(queue: GuardedQueue) -> None:
    queue.put("a")
    queue.put("b")
    queue.close()
    queue.join_thread()


def _put_then_die_before_the_feeder_writes(queue: GuardedQueue) -> None:
    # The feeder thread is started by the first put; hold the writer lock so it cannot write, as a
    # process stopped between its put() and its feeder's send would be, then die.
    queue._wlock.acquire()
    queue.put("lost")
    time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)
