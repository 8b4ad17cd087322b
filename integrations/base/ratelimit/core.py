"""What both budget stores share: the pace arithmetic, who holds a lease, and the heartbeat.

A lease names its holder — host, pid and the process's start time (against pid reuse) — so a slot held
by a process that is gone is taken back as soon as another worker needs it: at once on this machine
(`holder_alive` reads /proc), after at most LEASE_TTL for a holder on another host. A live holder
keeps its leases by a heartbeat: one daemon thread per process renews every lease the process holds
every HEARTBEAT_INTERVAL, so a call may last longer than LEASE_TTL while a SIGKILLed worker's slot
is free again LEASE_TTL after its last beat at the latest. A lease held past MAX_HOLD is a leak
(a path that never released it): it is no longer renewed, with an error in the log. The same thread
runs a store's deferred work when it is due (`flush_soon`: the released leases that no
next request took along, local.py and redis_store.py; at exit, whatever is left).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("integrations.base.ratelimit")

SAFETY = 0.97
BURST_FRACTION = 0.02
# A lease not renewed for this long is free again (its holder stopped beating: killed, or frozen).
LEASE_TTL = 20.0
HEARTBEAT_INTERVAL = 4.0
# A released lease no next grant took along is written by the heartbeat thread after this long.
RELEASE_DELAY = 0.05
# No call holds a slot this long (the attempt deadline ends it far sooner): a lease still held is a
# leak (a path that never released), and is left to expire rather than renewed for ever.
MAX_HOLD = 900.0
IN_FLIGHT_POLL = 0.05
# How often a worker refused a slot looks whether the holders are still alive (a /proc read each).
RECLAIM_INTERVAL = 0.25
# Float rounding must never produce a wait too small to advance a clock (or worth a sleep call).
EPSILON = 1e-6
MIN_WAIT = 0.001


# ---- who holds a lease ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    start: str  # the process's start time in clock ticks since boot ("" where /proc is absent)

    def as_dict(self) -> dict:
        return {"host": self.host, "pid": self.pid, "start": self.start}


_me: Holder | None = None


def process_start(pid: int) -> str | None:
    """The start time of a running process (a token that changes if the pid is reused); None if the
    process is gone or a zombie (SIGKILLed and not yet reaped by its parent: dead all the same)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (macOS): only whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    fields = raw[raw.rfind(")") + 2 :].split()
    if not fields or fields[0] in ("Z", "X", "x"):
        return None
    return fields[19] if len(fields) > 19 else ""


def _host() -> str:
    """This machine's name and pid namespace: a pid is only meaningful inside its namespace (two
    containers sharing a volume may share a host name, never a pid namespace)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}"


def this_process() -> Holder:
    global _me
    pid = os.getpid()
    if _me is None or _me.pid != pid:  # first use, or a forked child
        _me = Holder(_host(), pid, process_start(pid) or "")
    return _me


def holder_alive(host: str, pid: int, start: str) -> bool | None:
    """True/False for a holder on this machine; None when it cannot be told (another host)."""
    me = this_process()
    if host != me.host or not pid:
        return None
    if pid == me.pid:
        return True
    now_start = process_start(pid)
    if now_start is None:
        return False
    return not (start and now_start and start != now_start)  # a new process under a reused pid


# ---- what the dashboard reads --------------------------------------------------------------------
@dataclass
class HeldLease:
    budget: str
    lease: str
    write: bool
    host: str
    pid: int
    age: float  # seconds since it was taken
    expires_in: float  # seconds until it is free unless renewed
    alive: bool | None  # the holder process is alive (None: on another host, cannot tell)


@dataclass
class BudgetStatus:
    budget: str
    per_minute: int | None
    max_in_flight: int | None
    max_in_flight_writes: int | None
    leases: list[HeldLease] = field(default_factory=list)

    @property
    def full(self) -> bool:
        """Every slot is held: the next call of this credential waits (a freeze if it lasts)."""
        writes = sum(1 for lease in self.leases if lease.write)
        return bool(
            (self.max_in_flight and len(self.leases) >= self.max_in_flight)
            or (self.max_in_flight_writes and writes >= self.max_in_flight_writes)
        )


# ---- the budget ----------------------------------------------------------------------------------
class Budget:
    """Pace and caps of one credential; the stores (local.py, redis_store.py) keep the state.

    `acquire(write=…)` returns 0 when it took a slot, or the seconds to wait (nothing taken);
    `release(write=…)` frees the slot taken by this thread's last acquire.
    """

    def __init__(
        self,
        key: str,
        per_minute: int | None = None,
        max_in_flight: int | None = None,
        max_in_flight_writes: int | None = None,
        clock: Callable[[], float] = time.time,
        heartbeat: bool | None = None,
    ):
        self.key = key
        self.per_minute = per_minute
        self.max_in_flight = max_in_flight
        self.max_in_flight_writes = max_in_flight_writes
        self.clock = clock
        # Renewal runs in real time: with a simulated clock (tests) leases only expire.
        self.heartbeat = (clock is time.time) if heartbeat is None else heartbeat
        self._local = threading.local()
        self._next_reclaim = 0.0
        if per_minute:
            self.interval = 60.0 / (per_minute * SAFETY)
            self.tolerance = max(0.0, (per_minute * BURST_FRACTION - 1)) * self.interval
        else:
            self.interval = self.tolerance = 0.0

    @property
    def leased(self) -> bool:
        return bool(self.max_in_flight or self.max_in_flight_writes)

    @property
    def limits(self) -> dict:
        return {
            "per_minute": self.per_minute,
            "max_in_flight": self.max_in_flight,
            "max_in_flight_writes": self.max_in_flight_writes,
        }

    def _took(self, lease: str, write: bool) -> None:
        stack = getattr(self._local, "leases", None)
        if stack is None:
            stack = self._local.leases = []
        stack.append(lease)
        if lease and self.heartbeat:
            HEARTBEAT.hold(self, lease, write)

    def _pop_lease(self) -> str | None:
        stack = getattr(self._local, "leases", None)
        lease = stack.pop() if stack else None
        if lease:
            HEARTBEAT.drop(self, lease)
        return lease

    def _reclaim_due(self) -> bool:
        """Rate-limits the liveness look of a worker refused a slot (it polls every IN_FLIGHT_POLL)."""
        now = time.monotonic()
        if now < self._next_reclaim:
            return False
        self._next_reclaim = now + RECLAIM_INTERVAL
        return True

    # ---- releases ride on the next grant (local.py, redis_store.py) ------------------------------
    _crowded = True  # until a grant has shown the caps' use
    pending_key: object = None  # the store's key for PENDING_RELEASES (a path, a Redis key)

    def _note_use(self, leases: int, writes: int) -> None:
        """After a grant: crowded when a cap is half used (another caller may be waiting for a slot)."""
        self._crowded = bool(
            (self.max_in_flight and 2 * leases >= self.max_in_flight)
            or (self.max_in_flight_writes and 2 * writes >= self.max_in_flight_writes)
        )

    def release(self, *, write: bool) -> None:
        """Free this thread's last slot: written with the next grant, or by the heartbeat thread within
        RELEASE_DELAY; at once when the budget is crowded."""
        lease = self._pop_lease()
        if not lease:
            return
        PENDING_RELEASES.add(self.pending_key, lease)
        if self._crowded:
            self.flush()
        else:
            HEARTBEAT.flush_soon(self.flush, RELEASE_DELAY)  # unless the next grant takes it along

    def flush(self) -> None:  # pragma: no cover - each store has its own
        raise NotImplementedError

    def renew(self, leases: dict[str, bool]) -> None:  # pragma: no cover - each store has its own
        raise NotImplementedError


class _Heartbeat:
    """One daemon thread per process renewing the leases the process holds (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # budget -> {lease: (write, taken at monotonic)}
        self._held: weakref.WeakKeyDictionary[Budget, dict[str, tuple[bool, float]]] = (
            weakref.WeakKeyDictionary()
        )
        self._pid = 0
        self._wake = threading.Event()
        # deferred work: callable -> monotonic time it is due (run once, then forgotten)
        self._due: dict[Callable[[], None], float] = {}

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid != pid:  # first lease, or a forked child: the parent's thread and leases are not ours
            self._held = weakref.WeakKeyDictionary()
            self._due = {}
            self._pid = pid
            self._wake = threading.Event()
            threading.Thread(target=self._run, args=(pid,), name="ratelimit-heartbeat", daemon=True).start()

    def flush_soon(self, work: Callable[[], None], delay: float) -> None:
        """Run `work` on this thread in about `delay` seconds (once; a later call for the same work
        keeps the earlier time)."""
        with self._lock:
            self._ensure_thread()
            if work not in self._due:
                self._due[work] = time.monotonic() + delay
                self._wake.set()

    def run_due(self, *, everything: bool = False) -> float:
        """Run the deferred work that is due (`everything`: all of it, at exit); the seconds until the
        next is (HEARTBEAT_INTERVAL if none)."""
        now = time.monotonic()
        with self._lock:
            due = [work for work, at in self._due.items() if everything or at <= now]
            for work in due:
                del self._due[work]
            later = min(self._due.values(), default=now + HEARTBEAT_INTERVAL)
        for work in due:
            try:
                work()
            except Exception:  # noqa: BLE001 - the store logs its own faults; the thread must live on
                log.warning("rate budget: deferred work failed", exc_info=True)
        return max(0.0, later - now)

    def hold(self, budget: Budget, lease: str, write: bool) -> None:
        with self._lock:
            self._ensure_thread()
            self._held.setdefault(budget, {})[lease] = (write, time.monotonic())

    def drop(self, budget: Budget, lease: str) -> None:
        with self._lock:
            held = self._held.get(budget)
            if held is not None:
                held.pop(lease, None)

    def beat(self) -> None:
        now = time.monotonic()
        todo = []
        with self._lock:
            for budget, held in self._held.items():
                for lease, (_write, taken) in list(held.items()):
                    if now - taken > MAX_HOLD:
                        del held[lease]
                        log.error(
                            "rate budget %s: lease %s held %.0fs without release; no longer renewed",
                            budget.key,
                            lease,
                            now - taken,
                        )
                leases = {lease: write for lease, (write, _taken) in held.items()}
                if leases:
                    todo.append((budget, leases))
        for budget, leases in todo:
            try:
                budget.renew(leases)
            except Exception:  # noqa: BLE001 - a failed beat is retried at the next one
                log.warning(
                    "could not renew %d budget lease(s) of %s", len(leases), budget.key, exc_info=True
                )

    def _run(self, pid: int) -> None:
        next_beat = time.monotonic() + HEARTBEAT_INTERVAL
        wait = HEARTBEAT_INTERVAL
        while self._pid == pid:
            self._wake.wait(min(wait, max(0.0, next_beat - time.monotonic())))
            self._wake.clear()
            wait = self.run_due()
            if time.monotonic() >= next_beat:
                self.beat()
                next_beat = time.monotonic() + HEARTBEAT_INTERVAL


HEARTBEAT = _Heartbeat()


@atexit.register
def _write_deferred_at_exit() -> None:
    """A process ending normally writes its released leases (a killed one leaves them to the TTL or to
    the first worker refused a slot, which takes back the slots of processes that are gone)."""
    if HEARTBEAT._pid == os.getpid():
        HEARTBEAT.run_due(everything=True)


class PendingReleases:
    """Leases this process released and its store has not yet written, per budget (a state file's
    path, a Redis state key): the next grant takes them along (local.py, redis_store.py)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_budget: dict[object, set[str]] = {}

    def add(self, budget: object, lease: str) -> None:
        with self._lock:
            self._by_budget.setdefault(budget, set()).add(lease)

    def take(self, budget: object) -> set[str]:
        """The budget's pending releases, now the caller's to write."""
        with self._lock:
            return self._by_budget.pop(budget, set())

    def give_back(self, budget: object, leases: set[str]) -> None:
        """Not written (the store failed): the next grant or flush tries again."""
        if leases:
            with self._lock:
                self._by_budget.setdefault(budget, set()).update(leases)

    def peek(self, budget: object) -> set[str]:
        with self._lock:
            return set(self._by_budget.get(budget, ()))

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._by_budget = {}  # the parent's releases are the parent's to write


PENDING_RELEASES = PendingReleases()


def _after_fork() -> None:
    # A lock another thread held at fork time would stay held in the child for ever.
    HEARTBEAT._lock = threading.Lock()
    PENDING_RELEASES.after_fork()


os.register_at_fork(after_in_child=_after_fork)
