"""A worker SIGKILLed part-way through reading a task must not throw its cluster out of step.

The killed worker read the 4-byte length of the next message from the task queue's pipe, not its
body. Giving its reader lock back would leave the next reader starting in the middle of that body
("Ran out of input"); the sentinel retires the queue instead, and every task — the one that was
being read included — is still run, exactly once. A real cluster: django-q2's workers under the
GuardedSentinel, the Redis broker (it has no acknowledgement: a task in the pipe exists nowhere else).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter

import pytest
from django.utils import timezone
from django_q import cluster as q_cluster
from django_q.conf import Conf
from django_q.signing import SignedPackage

from integrations.base.qcluster import STOP, GuardedSentinel

pytestmark = pytest.mark.skipif(not Conf.REDIS, reason="needs REDIS_URL (the Redis broker)")

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


def test_a_worker_killed_mid_read_retires_the_task_queue_and_no_task_is_lost():
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
        deadline = time.monotonic() + 60
        while redis.llen(f"{key}:results") < queued and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # nothing runs twice, even late
        ran = Counter(int(n) for n in redis.lrange(key, 0, -1))
        assert sorted(ran) == list(range(1, queued + 1)), f"not run: {set(range(1, queued + 1)) - set(ran)}"
        assert set(ran.values()) == {1}, {n: c for n, c in ran.items() if c > 1}
        assert redis.llen(f"{key}:results") == queued  # every result reached the monitor
        assert sentinel.is_alive()
    finally:
        stop.set()
        sentinel.join(30)
        if sentinel.is_alive():
            sentinel.kill()
        redis.delete(key, f"{key}:results", sabotage)
