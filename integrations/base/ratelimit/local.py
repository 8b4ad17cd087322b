"""The budget of one machine (the embedded default): a small JSON file rewritten in place under a lock.

Every decision runs under an exclusive `flock` on a lock file of its own (`<name>.lock`, never
written); the state (`<name>.json`) is read, decided on and written back by one `pwrite` at offset 0,
padded with spaces to the length it had (JSON ignores trailing whitespace), so the file is never
truncated and never renamed. So:
- the state is exact: one process decides at a time, and the kernel queues the waiters;
- a look (the dashboard, `status()`) takes the lock shared, so it never sees a write half done; a
  process SIGKILLed mid-decision leaves the old state (its one small write is done or not begun),
  and the kernel drops a dead process's flock. A reader *without* the lock can see a write half
  done: the file used to be replaced by a renamed temporary file so that lock-free reads were whole,
  but the rename cost ~0.4 ms per request in a backfill (docs/PERFORMANCE.md §8), and every reader
  of this module takes the lock (tests/scale/test_budget_processes.py checks the state under it);
- one update per request: a grant is one read and one write (the pace and, when a cap needs one,
  the lease); a refusal writes nothing unless it cleaned expired leases. A release is not a write of
  its own: the lease is handed to this process's next update of the same budget (the next request's
  grant takes it along), or, if none comes within RELEASE_DELAY, written by the heartbeat thread.
  Released leases are never counted by a look from this process. When the budget is crowded (a cap
  half used at the last grant, so another caller may be waiting), a release is written at once;
- a state that still cannot be read (a disk fault, a person's edit) is rebuilt empty with a
  warning: the pace restarts from now and in-flight leases are forgotten, and no call ever fails
  for it.

Why not SQLite (`BEGIN IMMEDIATE`): it would be as safe, but a waiter for SQLite's lock sleeps in
its busy handler by steps of up to 100 ms, while a waiter for `flock` is woken by the kernel the
moment the lock is free; with N workers polling a paced budget that difference is the whole cost.
Not fsync'd: the budget protects a vendor's rate limit, not money; after a power cut the file is
rebuilt (see above).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from .core import (
    EPSILON,
    IN_FLIGHT_POLL,
    LEASE_TTL,
    MIN_WAIT,
    PENDING_RELEASES,
    Budget,
    BudgetStatus,
    HeldLease,
    holder_alive,
    log,
    this_process,
)

STATE_VERSION = 2
_open_lock = threading.Lock()


def _after_fork() -> None:
    global _open_lock
    _open_lock = threading.Lock()  # another thread may have held it at the fork


os.register_at_fork(after_in_child=_after_fork)


def default_directory() -> Path:
    return Path(settings.VAR_DIR) / "ratelimit"


def _lease(value: Any) -> dict | None:
    """One lease in the current shape, or None if it cannot be read (dropped)."""
    if isinstance(value, list) and len(value) >= 2:  # the first release's [expires, is_write]
        value = {"exp": value[0], "w": value[1]}
    if not isinstance(value, dict):
        return None
    try:
        return {
            "exp": float(value["exp"]),
            "w": bool(value.get("w")),
            "host": str(value.get("host") or ""),
            "pid": int(value.get("pid") or 0),
            "start": str(value.get("start") or ""),
            "at": float(value.get("at") or value["exp"]),
        }
    except (KeyError, TypeError, ValueError):
        return None


def parse_state(raw: bytes) -> dict:
    """The state in a file's bytes; ValueError if they are not a budget state."""
    data = json.loads(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise ValueError(f"a budget state is an object, not {type(data).__name__}")
    leases = data.get("leases") or {}
    if not isinstance(leases, dict):
        raise ValueError("leases is not an object")
    state = {
        "v": STATE_VERSION,
        "key": str(data.get("key") or ""),
        "limits": data.get("limits") if isinstance(data.get("limits"), dict) else {},
        "tat": float(data.get("tat") or 0.0),
        "leases": {},
    }
    for lease_id, value in leases.items():
        lease = _lease(value)
        if lease is not None:
            state["leases"][str(lease_id)] = lease
    return state


def status_of(state: dict, now: float, fallback_key: str = "") -> BudgetStatus:
    limits = state.get("limits") or {}
    key = state.get("key") or fallback_key
    leases = [
        HeldLease(
            budget=key,
            lease=lease_id,
            write=lease["w"],
            host=lease["host"],
            pid=lease["pid"],
            age=max(0.0, now - lease["at"]),
            expires_in=lease["exp"] - now,
            alive=holder_alive(lease["host"], lease["pid"], lease["start"]),
        )
        for lease_id, lease in state["leases"].items()
        if lease["exp"] > now
    ]
    return BudgetStatus(
        budget=key,
        per_minute=limits.get("per_minute"),
        max_in_flight=limits.get("max_in_flight"),
        max_in_flight_writes=limits.get("max_in_flight_writes"),
        leases=sorted(leases, key=lambda lease: -lease.age),
    )


class LocalBudget(Budget):
    """State in a file on this machine, shared by its processes (module docstring)."""

    def __init__(self, *args: Any, directory: Path | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        directory = directory or default_directory()
        directory.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(self.key.encode()).hexdigest()[:32]
        self.path = directory / f"{name}.json"
        self.lock_path = directory / f"{name}.lock"
        self.pending_key = self.path
        self._fd = -1
        self._fd_pid = 0
        self._thread_lock = threading.Lock()

    # ---- the file -----------------------------------------------------------------------------
    def _handles(self) -> tuple[int, threading.Lock]:
        pid = os.getpid()
        if self._fd_pid != pid:
            with _open_lock:
                if self._fd_pid != pid:
                    # Per process: a forked child sharing its parent's open file would share its flock.
                    self._thread_lock = threading.Lock()
                    self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    self._fd_pid = pid
        return self._fd, self._thread_lock

    @contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        fd, thread_lock = self._handles()
        with thread_lock:  # flock excludes processes; the threads of one share its open file
            fcntl.flock(fd, mode)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _exclusive(self) -> Any:
        return self._locked(fcntl.LOCK_EX)

    def _read_raw(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""
        except OSError as exc:
            log.warning(
                "rate budget %s: cannot read %s (%s); starting from an empty state", self.key, self.path, exc
            )
            return b""

    def _parse(self, raw: bytes) -> dict:
        try:
            return parse_state(raw)
        except (ValueError, TypeError) as exc:
            log.warning(
                "rate budget %s: %s is not a valid budget state (%s: %r…); rebuilt empty — the pace "
                "restarts from now and its in-flight leases are forgotten",
                self.key,
                self.path,
                exc,
                raw[:80],
            )
            return parse_state(b"")

    def read_state(self) -> dict:
        """The current state as this process sees it (its own releases not yet written are gone);
        rebuilt empty if unreadable. Takes the lock shared: never a write half done."""
        with self._locked(fcntl.LOCK_SH):
            raw = self._read_raw()
        state = self._parse(raw)
        for lease in PENDING_RELEASES.peek(self.path):
            state["leases"].pop(lease, None)
        return state

    def _write(self, state: dict, size: int) -> None:
        """One write at offset 0, padded with spaces to the file's `size` (module docstring)."""
        state["key"], state["limits"] = self.key, self.limits
        data = json.dumps(state, separators=(",", ":")).encode()
        if len(data) < size:
            data += b" " * (size - len(data))
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                written = os.pwrite(fd, data, 0)
                if written < len(data):  # a full disk mid-write: the rest, or the error below
                    view = memoryview(data)[written:]
                    while view:
                        view = view[os.pwrite(fd, view, len(data) - len(view)) :]
            finally:
                os.close(fd)
        except OSError as exc:  # a full or read-only disk: pacing is lost, calls are not
            log.error("rate budget %s: cannot write %s (%s)", self.key, self.path, exc)

    def _update(self, step: Callable[[dict, float], tuple[Any, bool]]) -> Any:
        """One atomic read-decide-write; `step(state, now)` returns (result, changed). This process's
        released leases not yet written go in the same write."""
        with self._exclusive():
            raw = self._read_raw()
            state = self._parse(raw)
            released = PENDING_RELEASES.take(self.path)
            changed = False
            for lease in released:
                changed = state["leases"].pop(lease, None) is not None or changed
            result, step_changed = step(state, self.clock())
            if changed or step_changed:
                self._write(state, len(raw))
            return result

    def flush(self) -> None:
        """Write this process's released leases of this budget, if no update took them along."""
        if PENDING_RELEASES.peek(self.path):
            self._update(lambda state, now: (None, False))

    # ---- decisions ----------------------------------------------------------------------------
    def _blocked(self, leases: dict, write: bool) -> bool:
        if self.max_in_flight and len(leases) >= self.max_in_flight:
            return True
        return bool(
            write
            and self.max_in_flight_writes
            and sum(1 for lease in leases.values() if lease["w"]) >= self.max_in_flight_writes
        )

    def _clean(self, leases: dict, now: float, *, reclaim: bool) -> bool:
        """Drop expired leases and, if `reclaim`, those of dead processes; True if any went."""
        gone = [k for k, v in leases.items() if v["exp"] <= now]
        if reclaim:
            dead = [
                k
                for k, v in leases.items()
                if v["exp"] > now and holder_alive(v["host"], v["pid"], v["start"]) is False
            ]
            for k in dead:
                log.warning(
                    "rate budget %s: took back the slot held %.1fs by process %s, which is gone",
                    self.key,
                    now - leases[k]["at"],
                    leases[k]["pid"],
                )
            gone += dead
        for k in gone:
            del leases[k]
        return bool(gone)

    def _decide(self, state: dict, write: bool, now: float) -> tuple[float, str | None, bool]:
        leases = state["leases"]
        changed = self._clean(leases, now, reclaim=False)
        if self._blocked(leases, write):
            self._crowded = True
            if not (self._reclaim_due() and self._clean(leases, now, reclaim=True)):
                return IN_FLIGHT_POLL, None, changed
            changed = True
            if self._blocked(leases, write):
                return IN_FLIGHT_POLL, None, changed
        if self.interval:
            tat = max(state["tat"], now)
            if tat - now > self.tolerance + EPSILON:
                return max(MIN_WAIT, tat - now - self.tolerance), None, changed
            state["tat"] = tat + self.interval
        lease = ""
        if self.max_in_flight or (write and self.max_in_flight_writes):
            lease = uuid.uuid4().hex
            leases[lease] = {"exp": now + LEASE_TTL, "w": bool(write), **this_process().as_dict(), "at": now}
            self._note_use(len(leases), sum(1 for each in leases.values() if each["w"]))
        return 0.0, lease, True

    # ---- the budget interface -----------------------------------------------------------------
    def acquire(self, *, write: bool) -> float:
        def step(state: dict, now: float) -> tuple[tuple[float, str | None], bool]:
            wait, lease, changed = self._decide(state, write, now)
            return (wait, lease), changed

        wait, lease = self._update(step)
        if lease is not None:
            self._took(lease, write)
        return wait

    def renew(self, leases: dict[str, bool]) -> None:
        def step(state: dict, now: float) -> tuple[None, bool]:
            held = [state["leases"][k] for k in leases if k in state["leases"]]
            for lease in held:
                lease["exp"] = now + LEASE_TTL
            return None, bool(held)

        self._update(step)

    def in_flight(self) -> int:
        """How many slots are held right now by live holders (a look: nothing is taken)."""

        def step(state: dict, now: float) -> tuple[int, bool]:
            changed = self._clean(state["leases"], now, reclaim=bool(state["leases"]))
            return len(state["leases"]), changed

        return self._update(step)

    def status(self) -> BudgetStatus:
        state = self.read_state()  # without this process's released leases
        state["limits"] = state["limits"] or self.limits
        return status_of(state, self.clock(), self.key)


def local_statuses(directory: Path | None = None, now: float | None = None) -> list[BudgetStatus]:
    """Every local budget on this machine as it stands (lock-free reads)."""
    import time

    directory = directory or default_directory()
    now = time.time() if now is None else now
    statuses = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            with open(path.with_suffix(".lock"), "a+b") as lock:  # shared: never a write half done
                fcntl.flock(lock.fileno(), fcntl.LOCK_SH)
                state = parse_state(path.read_bytes())
        except (OSError, ValueError, TypeError):
            continue  # rebuilt with a warning by its next user
        for lease in PENDING_RELEASES.peek(path):  # released by this process, not yet written
            state["leases"].pop(lease, None)
        statuses.append(status_of(state, now, fallback_key=path.stem))
    return statuses
