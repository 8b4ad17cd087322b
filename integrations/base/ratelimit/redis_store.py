"""The budget shared by every host: state in Redis, changed atomically by one Lua script per request.

Keys (per budget, `ml-connector:ratelimit:<sha256(key)[:32]>`): the hash itself (`tat`, `name`,
`limits`), `…:leases` and `…:writes` (sorted sets, score = expiry), `…:holders` (lease → JSON
[host, pid, start, taken_at, write]). Leases are short (core.LEASE_TTL) and renewed by the holder's
heartbeat, so a SIGKILLed worker's slot is free LEASE_TTL after its last beat at the latest; one on
this host is taken back at once by the first worker refused a slot (core.holder_alive).

One script call per request: a release is not a call of its own. The released lease is passed to
this budget's next grant, whose script removes it before deciding (the next request takes it along);
if no grant comes within RELEASE_DELAY the heartbeat thread removes it. A look from this process
never counts it. When the budget is crowded (a cap half used at the last grant, so another worker
may be waiting), the release is sent at once, as before.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from .core import (
    IN_FLIGHT_POLL,
    LEASE_TTL,
    PENDING_RELEASES,
    Budget,
    BudgetStatus,
    HeldLease,
    holder_alive,
    log,
    this_process,
)

PREFIX = "ml-connector:ratelimit:"
KEY_TTL = 3600

_ACQUIRE = """
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
local holders_key = state_key .. ':holders'
for released in string.gmatch(ARGV[12], '[^,]+') do
  redis.call('ZREM', leases_key, released)
  redis.call('ZREM', writes_key, released)
  redis.call('HDEL', holders_key, released)
end
local expired = redis.call('ZRANGEBYSCORE', leases_key, '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', leases_key, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', writes_key, '-inf', now)
  redis.call('HDEL', holders_key, unpack(expired))
end
if max_in_flight > 0 and redis.call('ZCARD', leases_key) >= max_in_flight then return '-1' end
if write == 1 and max_writes > 0 and redis.call('ZCARD', writes_key) >= max_writes then return '-1' end
if interval > 0 then
  local tat = tonumber(redis.call('HGET', state_key, 'tat') or '0')
  if tat < now then tat = now end
  if tat - now > tolerance + 0.000001 then return tostring(math.max(0.001, tat - now - tolerance)) end
  redis.call('HSET', state_key, 'tat', tostring(tat + interval))
end
redis.call('HSET', state_key, 'name', ARGV[10], 'limits', ARGV[11])
redis.call('EXPIRE', state_key, 3600)
if lease ~= '' then
  redis.call('ZADD', leases_key, now + ttl, lease)
  redis.call('EXPIRE', leases_key, 3600)
  if write == 1 then
    redis.call('ZADD', writes_key, now + ttl, lease)
    redis.call('EXPIRE', writes_key, 3600)
  end
  redis.call('HSET', holders_key, lease, ARGV[9])
  redis.call('EXPIRE', holders_key, 3600)
end
return '0 ' .. redis.call('ZCARD', leases_key) .. ' ' .. redis.call('ZCARD', writes_key)
"""


def state_key_for(key: str) -> str:
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()[:32]


def _status(client: Any, state_key: str, now: float, fallback_key: str = "") -> BudgetStatus:
    pipe = client.pipeline()
    pipe.hgetall(state_key)
    pipe.zrangebyscore(state_key + ":leases", f"({now}", "+inf", withscores=True)
    pipe.hgetall(state_key + ":holders")
    state, leases, holders = pipe.execute()
    state = {k.decode(): v.decode() for k, v in state.items()}
    holders = {k.decode(): v for k, v in holders.items()}
    try:
        limits = json.loads(state.get("limits") or "{}")
    except ValueError:
        limits = {}
    name = state.get("name") or fallback_key
    held = []
    for lease, expires in leases:
        lease = lease.decode()
        try:
            host, pid, start, taken_at, write = json.loads(holders.get(lease) or b"null")
        except (TypeError, ValueError):
            host, pid, start, taken_at, write = "", 0, "", expires - LEASE_TTL, False
        held.append(
            HeldLease(
                budget=name,
                lease=lease,
                write=bool(write),
                host=host,
                pid=int(pid),
                age=max(0.0, now - float(taken_at)),
                expires_in=expires - now,
                alive=holder_alive(host, int(pid), start),
            )
        )
    return BudgetStatus(
        budget=name,
        per_minute=limits.get("per_minute"),
        max_in_flight=limits.get("max_in_flight"),
        max_in_flight_writes=limits.get("max_in_flight_writes"),
        leases=sorted(held, key=lambda lease: -lease.age),
    )


class RedisBudget(Budget):
    """State in Redis, changed atomically by one Lua script: shared by every host."""

    def __init__(self, *args: Any, redis_url: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        import redis

        self.redis = redis.Redis.from_url(redis_url)
        self.state_key = state_key_for(self.key)
        self._script = self.redis.register_script(_ACQUIRE)
        self._limits_json = json.dumps(self.limits)
        self.pending_key = self.state_key

    def _try(self, write: bool) -> tuple[float, str]:
        now = self.clock()
        lease = uuid.uuid4().hex if (self.max_in_flight or (write and self.max_in_flight_writes)) else ""
        holder = json.dumps([*this_process().as_dict().values(), now, bool(write)])
        released = PENDING_RELEASES.take(self.state_key)
        try:
            answer = self._script(
                keys=[self.state_key],
                args=[
                    now,
                    1 if write else 0,
                    self.max_in_flight or 0,
                    self.max_in_flight_writes or 0,
                    self.interval,
                    self.tolerance,
                    lease,
                    LEASE_TTL,
                    holder,
                    self.key,
                    self._limits_json,
                    ",".join(released),
                ],
            )
        except Exception:
            PENDING_RELEASES.give_back(self.state_key, released)
            raise
        wait, *counts = (answer.decode() if isinstance(answer, bytes) else str(answer)).split()
        if lease and counts:
            self._note_use(*(int(n) for n in counts))
        elif float(wait) < 0:
            self._crowded = True
        return float(wait), lease

    def acquire(self, *, write: bool) -> float:
        wait, lease = self._try(write)
        if wait < 0 and self._reclaim_due() and self._reclaim():
            wait, lease = self._try(write)
        if wait < 0:
            return IN_FLIGHT_POLL
        if wait == 0:
            self._took(lease, write)
        return wait

    def _reclaim(self) -> int:
        """Take back the leases of processes of this host that are gone; how many."""
        status = _status(self.redis, self.state_key, self.clock(), self.key)
        dead = [lease for lease in status.leases if lease.alive is False]
        if not dead:
            return 0
        pipe = self.redis.pipeline()
        for lease in dead:
            log.warning(
                "rate budget %s: took back the slot held %.1fs by process %s, which is gone",
                self.key,
                lease.age,
                lease.pid,
            )
            pipe.zrem(self.state_key + ":leases", lease.lease)
            pipe.zrem(self.state_key + ":writes", lease.lease)
            pipe.hdel(self.state_key + ":holders", lease.lease)
        pipe.execute()
        return len(dead)

    def flush(self) -> None:
        """Remove this budget's released leases in Redis, if no grant took them along."""
        released = PENDING_RELEASES.take(self.state_key)
        if not released:
            return
        pipe = self.redis.pipeline()
        for lease in released:
            pipe.zrem(self.state_key + ":leases", lease)
            pipe.zrem(self.state_key + ":writes", lease)
            pipe.hdel(self.state_key + ":holders", lease)
        try:
            pipe.execute()
        except Exception:
            PENDING_RELEASES.give_back(self.state_key, released)
            raise

    def renew(self, leases: dict[str, bool]) -> None:
        expires = self.clock() + LEASE_TTL
        pipe = self.redis.pipeline()
        for lease, write in leases.items():
            # xx: a lease that expired meanwhile is not brought back (its slot may be someone else's)
            pipe.zadd(self.state_key + ":leases", {lease: expires}, xx=True)
            if write:
                pipe.zadd(self.state_key + ":writes", {lease: expires}, xx=True)
        for suffix in (":leases", ":writes", ":holders"):
            pipe.expire(self.state_key + suffix, KEY_TTL)
        pipe.execute()

    def in_flight(self) -> int:
        """How many slots are held right now by live holders (a look: nothing is taken)."""
        self.flush()
        count = int(self.redis.zcount(self.state_key + ":leases", f"({self.clock()}", "+inf"))
        if count and self._reclaim_due():
            count -= self._reclaim()
        return count

    def status(self) -> BudgetStatus:
        status = _status(self.redis, self.state_key, self.clock(), self.key)
        released = PENDING_RELEASES.peek(self.state_key)
        if released:  # released by this process, not yet removed in Redis
            status.leases = [lease for lease in status.leases if lease.lease not in released]
        return status


def redis_statuses(redis_url: str, now: float) -> list[BudgetStatus]:
    """Every budget in this Redis as it stands."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = sorted(
        key.decode()
        for key in client.scan_iter(match=PREFIX + "*", count=500)
        if ":" not in key.decode()[len(PREFIX) :]
    )
    return [_status(client, key, now, fallback_key=key[len(PREFIX) :]) for key in keys]
