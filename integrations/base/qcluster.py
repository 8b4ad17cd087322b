"""django-q2's cluster, with its queues' locks taken back from a worker that died holding one.

A django-q2 cluster (`manage.py qcluster`) is a sentinel process, a pusher that moves tasks from the
broker into a `multiprocessing.Queue`, N worker processes that read that queue, and a monitor that
reads their results from a second one. A worker waiting for its next task blocks inside
`task_queue.get()` *holding the queue's reader lock* (a POSIX semaphore, so it has no owner). Kill
that idle worker — an OOM kill, an operator's `kill -9` — and the lock is never given back: the
sentinel spawns a replacement, but it and every other worker of the cluster wait for the lock for
good while `/healthz` turns red. The same holds for the result queue's writer lock, held by a
worker's feeder thread while it sends a result to the monitor.

`GuardedSentinel` replaces both locks with `OwnedLock`s — the same semaphore plus the pid of the
process that holds it, in shared memory — and, when it reincarnates a dead worker, releases any lock
that worker still holds. Reading a message happens entirely while the lock is held, and an idle
worker is blocked before the first byte, so the pipe stays whole. The window in which a death is not
noticed (between taking the semaphore and writing the pid, or between clearing it and giving the
semaphore back) is a few instructions wide.

`integrations/management/commands/qcluster.py` runs the cluster with this sentinel, so operators keep
typing `python manage.py qcluster`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from typing import Any

from django_q import cluster as q_cluster

log = logging.getLogger(__name__)


class OwnedLock:
    """A process-shared lock that knows which process holds it (0: nobody).

    Same interface as `multiprocessing.Lock` for what `multiprocessing.Queue` uses (acquire with
    block/timeout, release, context manager). The pid is a raw shared int: writing it takes no lock,
    so it cannot itself be left held by a dead process.
    """

    def __init__(self, ctx: Any = None):
        ctx = ctx or q_cluster.get_mp_context()
        self._lock = ctx.Lock()
        self._owner = ctx.RawValue("i", 0)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        got = self._lock.acquire(block, timeout)
        if got:
            self._owner.value = os.getpid()
        return got

    def release(self) -> None:
        self._owner.value = 0
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def holder(self) -> int:
        return self._owner.value

    def release_for(self, pid: int) -> bool:
        """Give the lock back if the (dead) process `pid` holds it; True if it did."""
        if not pid or self._owner.value != pid:
            return False
        self._owner.value = 0
        self._lock.release()
        return True


def guard_queue(queue: multiprocessing.queues.Queue) -> multiprocessing.queues.Queue:
    """Swap a fresh (not yet shared) queue's reader and writer locks for OwnedLocks."""
    queue._rlock = OwnedLock()
    if queue._wlock is not None:  # None on Windows only
        queue._wlock = OwnedLock()
    return queue


def release_locks_of(pid: int, *queues: multiprocessing.queues.Queue) -> list[str]:
    """Release every queue lock the dead process `pid` still holds; which ones, for the log."""
    freed = []
    for name, queue in zip(("task", "result"), queues, strict=False):
        for kind in ("_rlock", "_wlock"):
            lock = getattr(queue, kind, None)
            if isinstance(lock, OwnedLock) and lock.release_for(pid):
                freed.append(f"{name} queue {'reader' if kind == '_rlock' else 'writer'} lock")
    return freed


class GuardedSentinel(q_cluster.Sentinel):
    """django-q2's sentinel; a worker's death also frees the queue locks it held."""

    def start(self) -> None:
        # Runs before any pusher, worker or monitor is forked: they all inherit the guarded locks.
        guard_queue(self.task_queue)
        guard_queue(self.result_queue)
        super().start()

    def reincarnate(self, process: Any) -> None:
        if process in self.pool and not process.is_alive():
            freed = release_locks_of(process.pid, self.task_queue, self.result_queue)
            if freed:
                log.warning(
                    "worker %s (pid %s) died holding the %s: released for the other workers",
                    process.name,
                    process.pid,
                    " and the ".join(freed),
                )
        super().reincarnate(process)


class GuardedCluster(q_cluster.Cluster):
    """django-q2's Cluster whose sentinel process is a GuardedSentinel."""

    def start(self) -> int:
        # Cluster.start() forks `Sentinel` as named in django_q.cluster; it is looked up at call
        # time, so it is swapped for the duration of the start (this process only) and put back.
        original = q_cluster.Sentinel
        q_cluster.Sentinel = GuardedSentinel
        try:
            return super().start()
        finally:
            q_cluster.Sentinel = original
