"""Shared rate budgets: never more than the limit in any 60-second window, near-full throughput."""

import os
from collections import deque

import pytest

from integrations.base.ratelimit import LocalBudget, RedisBudget


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def drive(budget, clock, seconds, write=False):
    """Send as fast as the budget allows for `seconds` of simulated time; return request times."""
    sent = []
    end = clock.now + seconds
    while clock.now < end:
        wait = budget.acquire(write=write)
        if wait > 0:
            clock.now += wait
            continue
        sent.append(clock.now)
        budget.release(write=write)
    return sent


def max_in_window(times, window=60.0):
    q, best = deque(), 0
    for t in times:
        q.append(t)
        while q[0] <= t - window:
            q.popleft()
        best = max(best, len(q))
    return best


def make_budgets(tmp_path, clock, **kw):
    budgets = [LocalBudget("asana:tok", clock=clock, directory=tmp_path, **kw)]
    if os.environ.get("REDIS_URL"):
        rb = RedisBudget("asana:tok:test", clock=clock, redis_url=os.environ["REDIS_URL"], **kw)
        rb.redis.delete(rb.state_key, rb.state_key + ":leases", rb.state_key + ":writes")
        budgets.append(rb)
    return budgets


@pytest.mark.parametrize("per_minute", [150, 1500])
def test_pace_never_exceeds_limit_and_uses_at_least_95_percent(tmp_path, per_minute):
    clock = FakeClock()
    for budget in make_budgets(tmp_path, clock, per_minute=per_minute):
        sent = drive(budget, clock, 300)
        assert max_in_window(sent) <= per_minute
        assert len(sent) >= 0.95 * per_minute * 5


def test_two_processes_share_one_local_budget(tmp_path):
    clock = FakeClock()
    a = LocalBudget("shared", 600, None, None, clock=clock, directory=tmp_path)
    b = LocalBudget("shared", 600, None, None, clock=clock, directory=tmp_path)
    sent = []
    end = clock.now + 120
    turn = 0
    while clock.now < end:
        budget = (a, b)[turn % 2]
        turn += 1
        wait = budget.acquire(write=False)
        if wait > 0:
            clock.now += wait / 2
            continue
        sent.append(clock.now)
        budget.release(write=False)
    assert max_in_window(sent) <= 600


def test_in_flight_writes_are_capped_and_released(tmp_path):
    clock = FakeClock()
    for budget in make_budgets(tmp_path, clock, max_in_flight_writes=2):
        assert budget.acquire(write=True) == 0
        assert budget.acquire(write=True) == 0
        assert budget.acquire(write=True) > 0  # third write waits
        assert budget.acquire(write=False) == 0  # reads are not capped by the write cap
        budget.release(write=False)
        budget.release(write=True)
        assert budget.acquire(write=True) == 0


def test_leases_of_a_killed_worker_expire(tmp_path):
    clock = FakeClock()
    for budget in make_budgets(tmp_path, clock, max_in_flight=1):
        assert budget.acquire(write=False) == 0
        assert budget.acquire(write=False) > 0
        clock.now += 121  # the holder died without releasing
        assert budget.acquire(write=False) == 0
        budget.release(write=False)
