"""django-q2's cluster, kept going when one of its workers is killed at any instant.

A django-q2 cluster (`manage.py qcluster`) is a sentinel process, a pusher that moves tasks from the
broker into a `multiprocessing.Queue` (a pipe), N worker processes that read that queue, and a monitor
that reads their results from a second one. A message on the pipe is a 4-byte length, then the
pickled task; a reader reads both while it holds the queue's reader lock (a POSIX semaphore, so it
has no owner). Kill a worker — an OOM kill, an operator's `kill -9` — while it holds that lock and
django-q2 as shipped never gets it back: every other worker waits for it for good. Give the lock back
blindly and the next reader may start in the middle of a message the dead one had begun: it fails to
unpickle ("Ran out of input") and the pipe stays out of step.

`GuardedSentinel` uses `GuardedQueue`s: their locks are `OwnedLock`s (the semaphore plus the holder's
pid, in shared memory); they count the messages and bytes written and the messages and bytes read
whole (counted while the reader still holds the lock); and they can be retired. When a dead worker
held the task queue's reader lock, the sentinel tells the two cases apart (`pipe_is_whole`):

- it died *between* messages — an idle worker blocked before its first byte, whether or not tasks
  came in since: with the writer lock taken, the pipe holds exactly the bytes written and not read
  whole (FIONREAD). The lock is released, the others go on.
- otherwise it may have read part of a message: the queue is *retired*. A new task queue replaces
  it; the other workers get "STOP" from the old one (after their current task) and the sentinel
  starts them again on the new one; the pusher — `guarded_pusher`, which journals each task it put
  until the queue's read count passes it — hands every task not read whole (in the pipe, in its
  feeder's buffer, or dequeued but not yet put) back to the broker, and is started again too.
  Nothing is lost: the task the dead worker was reading was never run, and is handed back with the
  rest. The Redis broker has no acknowledgement, so the pusher's journal is the only copy of a task
  in the pipe; with the ORM broker the original is acknowledged once the copy is enqueued.

The result queue's writer lock, held by a worker's feeder thread while it sends a result to the
monitor, is released when its holder dies (as before). A result is written with one `write()` when
it is under 16 KiB, and a `write()` to a pipe with room is not cut short by a signal, so a dead
worker leaves part of a result in the pipe only if the monitor had let the pipe fill (64 KiB behind)
or the result is over 16 KiB (length and body go in two writes). That is not handled: it would take
the monitor's pipe to be retired too, with the results in it.

A queue's size (`qsize`, what the cluster's "idle" / "working" status reads) is the pipe's own
count — written whole minus read whole — not django-q2's shared counter: that one is bumped under a
process-shared lock after a message is handed to the feeder thread, so a worker killed there held the
lock for good (every put and get of the cluster waited on it) or left the count one too high for a
result that never reached the pipe (the cluster then reported "working" for ever).

The windows in which a death is not seen (between taking a semaphore and writing the pid, between
reading a message and counting it) are a few instructions wide; the second only makes the sentinel
retire the queue and hand back a task the dead worker had read whole but never started. A worker
that dies after reading a message but before giving back its slot of the queue's bounded semaphore
(`Q_CLUSTER["queue_limit"]`) leaves the queue one slot smaller until the queue is replaced.

`integrations/management/commands/qcluster.py` runs the cluster with this sentinel, so operators keep
typing `python manage.py qcluster`.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import struct
from collections import deque
from multiprocessing.reduction import ForkingPickler as _ForkingPickler
from queue import Full
from time import sleep
from typing import Any

from django import db
from django_q import cluster as q_cluster
from django_q.brokers import get_broker
from django_q.conf import Conf, setproctitle
from django_q.queues import Queue
from django_q.signing import BadSignature, SignedPackage

log = logging.getLogger(__name__)

STOP = "STOP"  # what django-q2's workers and monitor stop on
LOCK_TURN = 0.5  # seconds a reader waits for the lock (a writer for room) before it looks again


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


class GuardedQueue(Queue):
    """django-q2's Queue with owned locks, a count of the messages read whole, and a retired flag.

    `taken` counts the messages a reader received entirely (counted while it still holds the reader
    lock), so the pusher knows which of the tasks it put may not have been read. A retired queue is
    one whose pipe may hold part of a message: a reader waiting for it gets "STOP" (django-q2's
    worker then exits and the sentinel respawns it on the new queue) and never reads the pipe again.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        ctx = q_cluster.get_mp_context()
        self._rlock = OwnedLock(ctx)
        if self._wlock is not None:  # None on Windows only
            self._wlock = OwnedLock(ctx)
        # messages and bytes (length headers included) written to the pipe, and read from it whole
        self._written, self._written_bytes = ctx.RawValue("q", 0), ctx.RawValue("q", 0)
        self._taken, self._taken_bytes = ctx.RawValue("q", 0), ctx.RawValue("q", 0)
        self._retired = ctx.RawValue("b", 0)

    def _shared(self) -> tuple:
        return (self._written, self._written_bytes, self._taken, self._taken_bytes, self._retired)

    def __getstate__(self) -> tuple:
        return (*super().__getstate__(), self._shared())

    def __setstate__(self, state: tuple) -> None:
        self._written, self._written_bytes, self._taken, self._taken_bytes, self._retired = state[-1]
        super().__setstate__(state[:-1])

    def _reset(self, after_fork: bool = False) -> None:
        super()._reset(after_fork)
        send, recv = self._writer.send_bytes, self._reader.recv_bytes

        def counted_send(buf: Any) -> None:  # the feeder thread, holding the writer lock
            send(buf)
            self._written.value += 1
            self._written_bytes.value += framed_size(buf)

        def counted_recv(maxlength: int | None = None) -> bytes:  # a reader holding the reader lock
            data = recv(maxlength)
            self._taken.value += 1
            self._taken_bytes.value += framed_size(data)
            return data

        self._send_bytes, self._recv_bytes = counted_send, counted_recv

    @property
    def taken(self) -> int:
        return self._taken.value

    @property
    def written(self) -> int:
        return self._written.value

    @property
    def retired(self) -> bool:
        return bool(self._retired.value)

    def retire(self) -> None:
        self._retired.value = 1

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not (block and timeout is None):
            return super().get(block, timeout)
        # A blocking get, as django-q2's workers and monitor call it. The lock is waited for in short
        # turns: a dead holder that is never given it back must not keep the others here for good.
        while not self._rlock.acquire(True, LOCK_TURN):
            if self.retired:
                return STOP
        try:
            if self.retired:
                return STOP
            res = self._recv_bytes()
        finally:
            self._rlock.release()
        self._sem.release()
        return _ForkingPickler.loads(res)

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        # Not django-q2's put: its size counter is a lock-guarded shared int, bumped after the message
        # is handed to this process's feeder thread. A process killed there either holds that lock for
        # good (every put and get of the cluster waits on it) or leaves the count one too high for a
        # message that never reached the pipe (the cluster then says "working" for ever). The size is
        # the pipe's own count instead (qsize).
        multiprocessing.queues.Queue.put(self, obj, block, timeout)

    def qsize(self) -> int:
        """Messages in the pipe: written whole, not yet read whole (a message still in a feeder
        thread's buffer is not counted until it is written; one a dead process never wrote, never)."""
        return max(0, self._written.value - self._taken.value)

    def empty(self) -> bool:
        return self.qsize() == 0

    def put_unless_retired(self, obj: Any) -> bool:
        """Put, waiting for room in short turns; False (nothing put) once the queue is retired."""
        while not self.retired:
            try:
                self.put(obj, True, LOCK_TURN)
                return True
            except Full:
                continue
        return False

    def pipe_is_whole(self, timeout: float = 2.0) -> bool:
        """After its reader died holding the reader lock: does the pipe still start at a message?

        With the writer lock taken no writer is half-way through a message, and the pipe holds
        exactly the bytes written and not read by a reader that finished its message — unless the
        dead reader had taken some. So the pipe is whole when the bytes in it are exactly that: the
        dead reader was blocked before its first byte (or there was nothing to read). Fewer bytes:
        it read part of a message, or all of one it never counted — no. No answer either when the
        writer lock is not free within `timeout` (a writer blocked on a full pipe)."""
        if self._wlock is None or not self._wlock.acquire(True, timeout):
            return False
        try:
            unread = self._written_bytes.value - self._taken_bytes.value
            return bytes_in_pipe(self._reader) == unread
        finally:
            self._wlock.release()


def framed_size(buf: Any) -> int:
    """Bytes a message takes on a multiprocessing pipe: its length header, then the message."""
    n = memoryview(buf).nbytes
    return n + (4 if n <= 0x7FFFFFFF else 12)


def bytes_in_pipe(reader: Any) -> int:
    """Bytes waiting in a pipe (FIONREAD); -1 where that cannot be asked, which answers 'not whole'
    unless the pipe is empty."""
    try:
        import fcntl
        import termios

        return struct.unpack("i", fcntl.ioctl(reader.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except (ImportError, OSError):
        return -1 if reader.poll(0) else 0


def guarded_pusher(task_queue: GuardedQueue, event: Any, broker: Any = None) -> None:
    """django-q2's pusher (broker → task queue), which keeps what it put until a worker has read it.

    Each task put is journaled (its place in the queue, its ack id and its signed payload) until the
    queue's `taken` count passes it. When the sentinel retires the queue, the tasks no worker has
    read whole — in the pipe, in this process's feeder buffer, or not yet put — go back to the
    broker (`hand_back`), and the pusher exits: the sentinel starts the next one on the new queue.
    """
    broker = broker or get_broker()
    name = multiprocessing.current_process().name
    if setproctitle:
        setproctitle.setproctitle(f"qcluster {name} pusher")
    log.info("%s pushing tasks at %s", name, os.getpid())
    journal: deque[tuple[int, Any, str]] = deque()
    seq = task_queue.written  # messages already in the pipe; the next one put is seq + 1
    while True:
        try:
            pending = deque(broker.dequeue() or ())
        except Exception:
            log.exception("Failed to pull task from broker")
            sleep(10)  # the broker is probably down: the sentinel starts another pusher
            break
        while pending:
            ack_id, payload = pending[0]
            try:
                task = SignedPackage.loads(payload)
            except (TypeError, BadSignature):
                log.exception("Failed to push task to queue")
                broker.fail(ack_id)
                pending.popleft()
                continue
            task["cluster"], task["ack_id"] = Conf.CLUSTER_NAME, ack_id
            if not task_queue.put_unless_retired(task):
                break
            pending.popleft()
            seq += 1
            journal.append((seq, ack_id, payload))
            while journal and journal[0][0] <= task_queue.taken:
                journal.popleft()
        if task_queue.retired:
            unread = [(ack_id, payload) for n, ack_id, payload in journal if n > task_queue.taken]
            hand_back(broker, [*unread, *pending])
            task_queue.cancel_join_thread()  # what the feeder still holds is handed back too
            break
        if event.is_set():
            break
    log.info("%s stopped pushing tasks", name)


def hand_back(broker: Any, tasks: list[tuple[Any, str]]) -> None:
    """Put tasks no worker took back on the broker, as they came from it.

    The signed payload is enqueued again as it is (same task id, args, hooks). A broker with
    acknowledgements (the ORM) still holds the original, locked until its retry time: it is
    acknowledged after the copy is enqueued, so a crash between the two can only run it twice,
    never lose it. The Redis broker has no acknowledgement: the payload is the only copy left."""
    for ack_id, payload in tasks:
        broker.enqueue(payload)
        if ack_id is not None:
            broker.acknowledge(ack_id)
    if tasks:
        log.warning("task queue retired: %d unread task(s) handed back to the broker", len(tasks))


class GuardedSentinel(q_cluster.Sentinel):
    """django-q2's sentinel; a worker's death also frees the queue locks it held, or, when it died
    part-way through reading a task, moves the cluster to a new task queue."""

    def start(self) -> None:
        # Runs before any pusher, worker or monitor is forked: they all inherit the guarded queues.
        self.task_queue = new_task_queue()
        self.result_queue = GuardedQueue()
        self._retiring: set[int] = set()  # pids of the pusher and workers of a retired task queue
        super().start()

    def spawn_pusher(self) -> Any:
        return self.spawn_process(guarded_pusher, self.task_queue, self.event_out, self.broker)

    def reincarnate(self, process: Any) -> None:
        if process.pid in self._retiring and not process.is_alive():
            self._retiring.discard(process.pid)
            self._respawn_on_new_queue(process)
            return
        self._retiring.discard(process.pid)  # one that timed out goes through django-q2's path
        if process in self.pool and not process.is_alive():
            if self.task_queue._rlock.holder == process.pid and not self.task_queue.pipe_is_whole():
                self._retire_task_queue(process)
            freed = release_locks_of(process.pid, self.task_queue, self.result_queue)
            if freed:
                log.warning(
                    "worker %s (pid %s) died holding the %s: released for the other workers",
                    process.name,
                    process.pid,
                    " and the ".join(freed),
                )
        super().reincarnate(process)

    def _retire_task_queue(self, dead: Any) -> None:
        """`dead` may have read part of a message: nobody reads that pipe again. The pusher hands
        back what was not read whole and exits, the other workers exit after their current task;
        each is started again on a new queue as it goes."""
        old, self.task_queue = self.task_queue, new_task_queue()
        old.retire()
        alive = [p for p in (*self.pool, self.pusher) if p is not dead and p.is_alive()]
        self._retiring.update(p.pid for p in alive)
        log.warning(
            "worker %s (pid %s) died reading from the task queue (%d task(s) read of %d written): "
            "a new task queue replaces it; %d process(es) move to it",
            dead.name,
            dead.pid,
            old.taken,
            old.written,
            len(alive),
        )

    def _respawn_on_new_queue(self, process: Any) -> None:
        if not Conf.SYNC:
            db.connections.close_all()
        if process is self.pusher:
            self.pusher = self.spawn_pusher()
        else:
            self.pool.remove(process)
            self.spawn_worker()
        self.reincarnations += 1
        log.info(
            "%s (pid %s) left the retired task queue: started again on the new one", process.name, process.pid
        )


def new_task_queue() -> GuardedQueue:
    return GuardedQueue(maxsize=Conf.QUEUE_LIMIT) if Conf.QUEUE_LIMIT else GuardedQueue()


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
