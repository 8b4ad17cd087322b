"""Rate budgets shared by every worker process that uses one credential.

Two limits per budget:
- a pace (`per_minute`): GCRA (generic cell rate algorithm). Requests are spaced at
  60/(per_minute × SAFETY) seconds with a small burst allowance, so no 60-second window ever holds
  more than `per_minute` requests: bulk work runs at ~97% of the vendor's limit and never sees a 429;
- in-flight caps (`max_in_flight`, `max_in_flight_writes`): leases with an expiry, so a worker killed
  mid-request cannot hold a slot for ever.

Where the state lives: Redis when REDIS_URL is set (any number of hosts), otherwise a lock file on
this machine (the embedded default is one machine). Deliberately not the database: flows call
vendors while holding a RecordLink row lock inside a transaction, and a budget kept on that
connection would be invisible to other workers until commit.

`acquire(write=…)` returns 0 when it took a slot, or the seconds to wait (nothing taken);
`release(write=…)` frees the slot taken by this thread's last acquire; `in_flight()` counts the slots
held right now without taking one; `extend()` gives this thread's last slot a fresh LEASE_TTL (a slot
held longer than a request, e.g. an Acumatica session's seat, stays held while its holder is alive).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

SAFETY = 0.97
BURST_FRACTION = 0.02
LEASE_TTL = 120.0
IN_FLIGHT_POLL = 0.05
# Float rounding must never produce a wait too small to advance a clock (or worth a sleep call).
EPSILON = 1e-6
MIN_WAIT = 0.001

_instances: dict[tuple, object] = {}
_instances_lock = threading.Lock()


class _Budget:
    def __init__(
        self,
        key: str,
        per_minute: int | None = None,
        max_in_flight: int | None = None,
        max_in_flight_writes: int | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.key = key
        self.per_minute = per_minute
        self.max_in_flight = max_in_flight
        self.max_in_flight_writes = max_in_flight_writes
        self.clock = clock
        self._local = threading.local()
        if per_minute:
            self.interval = 60.0 / (per_minute * SAFETY)
            self.tolerance = max(0.0, (per_minute * BURST_FRACTION - 1)) * self.interval
        else:
            self.interval = self.tolerance = 0.0

    def _push_lease(self, lease: str) -> None:
        stack = getattr(self._local, "leases", None)
        if stack is None:
            stack = self._local.leases = []
        stack.append(lease)

    def _pop_lease(self) -> str | None:
        stack = getattr(self._local, "leases", None)
        return stack.pop() if stack else None

    def _top_lease(self) -> str | None:
        stack = getattr(self._local, "leases", None)
        return stack[-1] if stack else None

    def _decide(self, state: dict, write: bool, now: float) -> tuple[float, str | None]:
        """Pure decision on a state dict {tat, leases: {id: [expires, is_write]}}; mutates it when granted."""
        leases = {k: v for k, v in state.get("leases", {}).items() if v[0] > now}
        state["leases"] = leases
        if self.max_in_flight and len(leases) >= self.max_in_flight:
            return IN_FLIGHT_POLL, None
        if (
            write
            and self.max_in_flight_writes
            and sum(1 for v in leases.values() if v[1]) >= self.max_in_flight_writes
        ):
            return IN_FLIGHT_POLL, None
        if self.interval:
            tat = max(float(state.get("tat", 0.0)), now)
            if tat - now > self.tolerance + EPSILON:
                return max(MIN_WAIT, tat - now - self.tolerance), None
            state["tat"] = tat + self.interval
        lease = uuid.uuid4().hex
        if self.max_in_flight or self.max_in_flight_writes:
            leases[lease] = [now + LEASE_TTL, bool(write)]
        return 0.0, lease


class LocalBudget(_Budget):
    """State in a JSON file guarded by flock: shared by the processes of one machine."""

    def __init__(self, *args, directory: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        directory = directory or Path(settings.VAR_DIR) / "ratelimit"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / (hashlib.sha256(self.key.encode()).hexdigest()[:32] + ".json")
        self.path.touch(exist_ok=True)

    def _locked(self, fn):
        with open(self.path, "r+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                raw = fh.read()
                state = json.loads(raw) if raw.strip() else {}
                result, changed = fn(state)
                if changed:
                    fh.seek(0)
                    fh.truncate()
                    fh.write(json.dumps(state))
                    fh.flush()  # before the unlock: a write flushed at close() lands after it
                return result
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def acquire(self, *, write: bool) -> float:
        def step(state):
            wait, lease = self._decide(state, write, self.clock())
            return (wait, lease), lease is not None

        wait, lease = self._locked(step)
        if lease is not None:
            self._push_lease(lease)
        return wait

    def release(self, *, write: bool) -> None:
        lease = self._pop_lease()
        if lease is None or not (self.max_in_flight or self.max_in_flight_writes):
            return

        def step(state):
            return None, state.get("leases", {}).pop(lease, None) is not None

        self._locked(step)

    def extend(self) -> None:
        lease = self._top_lease()
        if lease is None:
            return

        def step(state):
            held = state.get("leases", {}).get(lease)
            if held is None:
                return None, False
            held[0] = self.clock() + LEASE_TTL
            return None, True

        self._locked(step)

    def in_flight(self) -> int:
        """How many leases are held right now, by anyone (a look: nothing is taken)."""
        now = self.clock()
        return self._locked(
            lambda state: (sum(1 for v in state.get("leases", {}).values() if v[0] > now), False)
        )


_REDIS_ACQUIRE = """
local state_key = KEYS[1]
local now = tonumber(ARGV[1])
local write = tonumber(ARGV[2])
local max_in_flight = tonumber(ARGV[3])
local max_writes = tonumber(ARGV[4])
local interval = tonumber(ARGV[5])
local tolerance = tonumber(ARGV[6])
local lease = ARGV[7]
local ttl = tonumber(ARGV[8])
local leases_key = state_key .. ':leases'
local writes_key = state_key .. ':writes'
redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', now)
redis.call('ZREMRANGEBYSCORE', writes_key, '-inf', now)
if max_in_flight > 0 and redis.call('ZCARD', leases_key) >= max_in_flight then return tostring(ARGV[9]) end
if write == 1 and max_writes > 0 and redis.call('ZCARD', writes_key) >= max_writes then
  return tostring(ARGV[9])
end
if interval > 0 then
  local tat = tonumber(redis.call('HGET', state_key, 'tat') or '0')
  if tat < now then tat = now end
  if tat - now > tolerance + 0.000001 then return tostring(math.max(0.001, tat - now - tolerance)) end
  redis.call('HSET', state_key, 'tat', tostring(tat + interval))
  redis.call('EXPIRE', state_key, 3600)
end
if max_in_flight > 0 or max_writes > 0 then
  redis.call('ZADD', leases_key, now + ttl, lease)
  redis.call('EXPIRE', leases_key, 3600)
  if write == 1 then
    redis.call('ZADD', writes_key, now + ttl, lease)
    redis.call('EXPIRE', writes_key, 3600)
  end
end
return '0'
"""


class RedisBudget(_Budget):
    """State in Redis, changed atomically by one Lua script: shared by every host."""

    def __init__(self, *args, redis_url: str, **kwargs):
        super().__init__(*args, **kwargs)
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self.state_key = "ml-connector:ratelimit:" + hashlib.sha256(self.key.encode()).hexdigest()[:32]
        self._script = self.redis.register_script(_REDIS_ACQUIRE)

    def acquire(self, *, write: bool) -> float:
        lease = uuid.uuid4().hex
        wait = float(
            self._script(
                keys=[self.state_key],
                args=[
                    self.clock(),
                    1 if write else 0,
                    self.max_in_flight or 0,
                    self.max_in_flight_writes or 0,
                    self.interval,
                    self.tolerance,
                    lease,
                    LEASE_TTL,
                    IN_FLIGHT_POLL,
                ],
            )
        )
        if wait <= 0:
            self._push_lease(lease)
        return wait

    def release(self, *, write: bool) -> None:
        lease = self._pop_lease()
        if lease and (self.max_in_flight or self.max_in_flight_writes):
            pipe = self.redis.pipeline()
            pipe.zrem(self.state_key + ":leases", lease)
            pipe.zrem(self.state_key + ":writes", lease)
            pipe.execute()

    def extend(self) -> None:
        lease = self._top_lease()
        if lease:
            self.redis.zadd(self.state_key + ":leases", {lease: self.clock() + LEASE_TTL}, xx=True)

    def in_flight(self) -> int:
        """How many leases are held right now, by anyone (a look: nothing is taken)."""
        return int(self.redis.zcount(self.state_key + ":leases", f"({self.clock()}", "+inf"))


def budget_for(
    key: str,
    *,
    per_minute: int | None = None,
    max_in_flight: int | None = None,
    max_in_flight_writes: int | None = None,
    clock: Callable[[], float] | None = None,
):
    """The shared budget for one credential (e.g. "asana:<token fingerprint>", "acumatica:<conn id>")."""
    redis_url = getattr(settings, "REDIS_URL", "")
    ident = (key, per_minute, max_in_flight, max_in_flight_writes, redis_url, clock)
    with _instances_lock:
        budget = _instances.get(ident)
        if budget is None:
            kwargs = {"clock": clock} if clock else {}
            if redis_url:
                budget = RedisBudget(
                    key, per_minute, max_in_flight, max_in_flight_writes, redis_url=redis_url, **kwargs
                )
            else:
                budget = LocalBudget(key, per_minute, max_in_flight, max_in_flight_writes, **kwargs)
            _instances[ident] = budget
        return budget


def fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a credential, for budget keys and logs."""
    return hashlib.sha256((secret or "").encode()).hexdigest()[:16]
