"""Rate budgets shared by every worker process that uses one credential.

Two limits per budget:
- a pace (`per_minute`): GCRA (generic cell rate algorithm). Requests are spaced at
  60/(per_minute × SAFETY) seconds with a small burst allowance, so no 60-second window ever holds
  more than `per_minute` requests: bulk work runs at ~97% of the vendor's limit and never sees a 429;
- in-flight caps (`max_in_flight`, `max_in_flight_writes`): leases naming their holder process,
  renewed by its heartbeat while the call runs. A lease of a process that is gone is taken back at
  once on this machine, and after at most LEASE_TTL (20 s) elsewhere (core.py): a SIGKILLed worker
  never freezes the others for long.

Where the state lives: Redis when REDIS_URL is set (any number of hosts, redis_store.py), otherwise
a file on this machine rewritten in place under a lock (the embedded default is one machine;
local.py says why not SQLite). Either store makes one update per request: a release rides on the
next grant (or the heartbeat thread writes it within 50 ms). Deliberately not the database: flows
call vendors while holding a RecordLink row lock inside a transaction, and a budget kept on that
connection would be invisible to other workers until commit.

`acquire(write=…)` returns 0 when it took a slot, or the seconds to wait (nothing taken);
`release(write=…)` frees the slot taken by this thread's last acquire (at once for this process's
looks, for the others with the next grant or within 50 ms); `in_flight()` counts the slots
held right now without taking one. For the dashboard, `budget_statuses()` lists every budget with the
leases held now (holder, age, alive) and whether it is full; `held_leases()` only the leases.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable

from django.conf import settings

from .core import (
    HEARTBEAT_INTERVAL,
    IN_FLIGHT_POLL,
    LEASE_TTL,
    SAFETY,
    Budget,
    BudgetStatus,
    HeldLease,
    holder_alive,
)
from .local import LocalBudget, local_statuses
from .redis_store import RedisBudget, redis_statuses

__all__ = [
    "HEARTBEAT_INTERVAL",
    "IN_FLIGHT_POLL",
    "LEASE_TTL",
    "SAFETY",
    "Budget",
    "BudgetStatus",
    "HeldLease",
    "LocalBudget",
    "RedisBudget",
    "budget_for",
    "budget_statuses",
    "fingerprint",
    "held_leases",
    "holder_alive",
]

_instances: dict[tuple, Budget] = {}
_instances_lock = threading.Lock()


def budget_for(
    key: str,
    *,
    per_minute: int | None = None,
    max_in_flight: int | None = None,
    max_in_flight_writes: int | None = None,
    clock: Callable[[], float] | None = None,
) -> Budget:
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


def budget_statuses() -> list[BudgetStatus]:
    """Every budget of this installation (Redis, or this machine's files) with the leases held now.

    A status whose `full` is True is a freeze while it lasts: every further call of that credential
    waits; a lease whose `alive` is False is a dead holder's, taken back by the next worker refused
    a slot."""
    redis_url = getattr(settings, "REDIS_URL", "")
    if redis_url:
        return redis_statuses(redis_url, time.time())
    return local_statuses(now=time.time())


def held_leases() -> list[HeldLease]:
    """The in-flight slots held right now, oldest first: budget, holder (host, pid), age, alive."""
    leases = [lease for status in budget_statuses() for lease in status.leases]
    return sorted(leases, key=lambda lease: -lease.age)


def fingerprint(secret: str) -> str:
    """A stable, non-reversible name for a credential, for budget keys and logs."""
    return hashlib.sha256((secret or "").encode()).hexdigest()[:16]
