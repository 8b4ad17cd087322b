"""Shared rate budgets: never more than the limit in any 60-second window, near-full throughput."""

import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import pytest

from integrations.base.ratelimit import (
    LEASE_TTL,
    LocalBudget,
    RedisBudget,
    budget_statuses,
    held_leases,
)
from integrations.base.ratelimit.core import HEARTBEAT, process_start, this_process


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


# ---- the local store: valid under every failure, leases of dead processes taken back ------------
def test_a_corrupt_state_file_is_rebuilt_with_a_warning_not_a_failure(tmp_path, caplog):
    budget = LocalBudget("asana:corrupt", 600, 2, None, directory=tmp_path)
    assert budget.acquire(write=False) == 0
    budget.release(write=False)
    budget.path.write_text('{"tat": 1.0, "leases": {}}{"tat"')  # what the old store left behind
    with caplog.at_level(logging.WARNING, logger="integrations.base.ratelimit"):
        assert budget.acquire(write=False) == 0  # the call goes on
    assert "not a valid budget state" in caplog.text
    state = json.loads(budget.path.read_text())  # rewritten whole
    assert len(state["leases"]) == 1 and state["key"] == "asana:corrupt"
    budget.release(write=False)
    assert json.loads(budget.path.read_text())["leases"] == {}


def test_a_read_with_only_writes_capped_is_one_update_and_takes_no_lease(tmp_path, monkeypatch):
    budget = LocalBudget("asana:reads", 600, None, 2, directory=tmp_path)
    writes = []
    real = budget._write
    monkeypatch.setattr(budget, "_write", lambda state, size: (writes.append(1), real(state, size)))
    assert budget.acquire(write=False) == 0
    budget.release(write=False)
    assert len(writes) == 1  # the pace only: no lease to take and give back
    assert budget.acquire(write=True) == 0
    assert budget.status().leases[0].write
    budget.release(write=True)
    assert len(writes) == 3


@pytest.mark.parametrize("zombie", [False, True])
def test_a_slot_held_by_a_dead_process_is_taken_back_at_once(tmp_path, zombie):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    if zombie:  # SIGKILLed but not yet reaped by its parent: dead all the same
        while process_start(proc.pid) is not None:
            time.sleep(0.01)
    else:
        proc.wait()
    budget = LocalBudget("acumatica:dead", None, 1, None, directory=tmp_path)
    me = this_process()
    state = {"leases": {"x": {"exp": time.time() + 20, "w": False, "host": me.host, "pid": proc.pid}}}
    budget.path.write_text(json.dumps(state))
    [held] = budget.status().leases
    assert held.pid == proc.pid and held.alive is False and budget.status().full
    assert budget.acquire(write=False) == 0  # no wait for the lease to expire
    [held] = budget.status().leases
    assert held.pid == os.getpid() and held.alive is True
    budget.release(write=False)
    proc.wait()


def test_a_live_holder_keeps_its_slot_and_the_dashboard_sees_it(tmp_path, settings):
    settings.REDIS_URL = ""
    settings.VAR_DIR = tmp_path
    budget = LocalBudget("acumatica:live", None, 1, None)
    assert budget.acquire(write=True) == 0
    assert budget.acquire(write=True) > 0  # held by this (live) process: the other caller waits
    [status] = budget_statuses()
    assert status.budget == "acumatica:live" and status.full and status.max_in_flight == 1
    [lease] = held_leases()
    assert lease.pid == os.getpid() and lease.alive and lease.write and lease.age < 5
    budget.release(write=True)
    assert held_leases() == [] and not budget_statuses()[0].full


def test_a_live_holder_keeps_its_slot_past_the_ttl_by_its_heartbeat(tmp_path):
    clock = FakeClock()
    for budget in make_budgets(tmp_path, clock, max_in_flight=1):
        budget.heartbeat = True
        assert budget.acquire(write=False) == 0
        for _ in range(4):  # a call lasting 4 × 15 s, three times the lease's TTL
            clock.now += 15
            HEARTBEAT.beat()
            assert budget.acquire(write=False) > 0  # still held: the others wait
        budget.release(write=False)
        assert budget.acquire(write=False) == 0
        budget.release(write=False)
        budget.heartbeat = False
        assert budget.acquire(write=False) == 0
        clock.now += LEASE_TTL + 1  # no beat (the holder froze or died elsewhere): the slot is free
        assert budget.acquire(write=False) == 0
        budget.release(write=False)
        budget.release(write=False)


def test_redis_status_names_the_holder(tmp_path):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    clock = FakeClock()
    [_, budget] = make_budgets(tmp_path, clock, max_in_flight=3, max_in_flight_writes=2)
    assert budget.acquire(write=True) == 0
    clock.now += 3
    status = budget.status()
    [lease] = status.leases
    assert (lease.pid, lease.alive, lease.write, lease.age) == (os.getpid(), True, True, 3.0)
    assert status.budget == "asana:tok:test" and not status.full
    assert budget.acquire(write=True) == 0 and budget.status().full  # the write cap is reached
    assert budget.acquire(write=True) > 0
    budget.release(write=True)
    budget.release(write=True)
    assert budget.status().leases == []


def test_threads_of_one_process_share_the_cap_exactly(tmp_path):
    budgets = [LocalBudget("acumatica:threads", None, 1, None, directory=tmp_path) for _ in range(2)]
    inside, most, errors = [0], [0], []
    guard = threading.Lock()

    def run(budget):
        try:
            for _ in range(150):
                while budget.acquire(write=True) > 0:
                    time.sleep(0.0005)
                with guard:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with guard:
                    inside[0] -= 1
                budget.release(write=True)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(budgets[i % 2],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and most[0] == 1
    assert json.loads(budgets[0].path.read_text())["leases"] == {}


def test_a_leaked_lease_is_not_renewed_for_ever(tmp_path, monkeypatch, caplog):
    from integrations.base.ratelimit import core

    clock = FakeClock()
    budget = LocalBudget("acumatica:leak", None, 1, None, clock=clock, heartbeat=True, directory=tmp_path)
    assert budget.acquire(write=False) == 0  # and never released
    monkeypatch.setattr(core, "MAX_HOLD", 0.0)
    clock.now += 15
    with caplog.at_level(logging.ERROR, logger="integrations.base.ratelimit"):
        HEARTBEAT.beat()
    assert "no longer renewed" in caplog.text
    clock.now += LEASE_TTL
    assert budget.acquire(write=False) == 0  # expired: the slot is free again
    budget.release(write=False)


# ---- one update per request: a release rides on the next grant ----------------------------------
def _count_writes(monkeypatch, budget):
    writes = []
    real = budget._write
    monkeypatch.setattr(budget, "_write", lambda state, size: (writes.append(1), real(state, size)))
    return writes


def _leases_on_disk(budget):
    """What another process reads: the file as written, not this process's view."""
    return json.loads(budget.path.read_text())["leases"]


def test_back_to_back_requests_cost_one_write_each(tmp_path, monkeypatch):
    budget = LocalBudget("asana:steady", 6000, 50, 15, directory=tmp_path)  # Asana's caps
    writes = _count_writes(monkeypatch, budget)
    for _ in range(40):
        assert budget.acquire(write=True) == 0
        budget.release(write=True)
    assert len(writes) == 40  # each grant also wrote the previous request's release
    # This process never counts its own released slot, even before it is written.
    assert budget.status().leases == [] and budget.in_flight() == 0
    assert _leases_on_disk(budget) == {}  # in_flight() is an update: it wrote the last release


def test_a_release_no_request_takes_along_reaches_other_processes_within_the_delay(tmp_path):
    budget = LocalBudget("asana:idle", None, 50, 15, directory=tmp_path)
    assert budget.acquire(write=True) == 0
    assert len(_leases_on_disk(budget)) == 1
    budget.release(write=True)
    deadline = time.monotonic() + 2
    while _leases_on_disk(budget) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _leases_on_disk(budget) == {}  # written by the heartbeat thread, not left to the TTL
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json,sys; print(len(json.load(open(sys.argv[1]))['leases']))",
            str(budget.path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other.stdout.strip() == "0"


def test_a_crowded_budget_writes_its_release_at_once(tmp_path, monkeypatch):
    budget = LocalBudget("asana:crowded", None, 4, None, directory=tmp_path)
    writes = _count_writes(monkeypatch, budget)
    assert budget.acquire(write=False) == 0  # 1 of 4: not crowded
    assert budget.acquire(write=False) == 0  # 2 of 4: half used, a caller may be waiting
    budget.release(write=False)
    assert len(writes) == 3 and len(_leases_on_disk(budget)) == 1  # written at once
    budget.release(write=False)
    assert len(writes) == 4 and _leases_on_disk(budget) == {}


def test_the_state_file_stays_valid_json_as_it_shrinks(tmp_path):
    budget = LocalBudget("asana:shrink", None, 10, None, clock=FakeClock(), directory=tmp_path)
    for _ in range(6):
        assert budget.acquire(write=False) == 0
    size = budget.path.stat().st_size
    for _ in range(6):
        budget.release(write=False)  # six of ten held: crowded, written at once
    assert _leases_on_disk(budget) == {} and budget.path.stat().st_size == size  # padded, not truncated
    assert budget.acquire(write=False) == 0 and len(_leases_on_disk(budget)) == 1


def test_redis_back_to_back_requests_cost_one_script_call_each(monkeypatch):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("REDIS_URL is not set")
    budget = RedisBudget("asana:steady:redis", 6000, 50, 15, redis_url=os.environ["REDIS_URL"])
    budget.redis.delete(*(budget.state_key + suffix for suffix in ("", ":leases", ":writes", ":holders")))
    calls = []
    script, pipeline = budget._script, budget.redis.pipeline
    monkeypatch.setattr(budget, "_script", lambda **kw: (calls.append("script"), script(**kw))[1])
    monkeypatch.setattr(budget.redis, "pipeline", lambda: (calls.append("pipeline"), pipeline())[1])
    for _ in range(40):
        assert budget.acquire(write=True) == 0
        budget.release(write=True)
    assert calls.count("script") == 40 and calls.count("pipeline") <= 1  # at most the heartbeat's flush
    assert budget.status().leases == []  # this process never counts its released slot
    deadline = time.monotonic() + 2
    while budget.redis.zcard(budget.state_key + ":leases") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert budget.redis.zcard(budget.state_key + ":leases") == 0  # removed for the other workers too
    assert budget.redis.hlen(budget.state_key + ":holders") == 0


def test_a_process_ending_normally_writes_its_released_lease(tmp_path):
    """No grant follows the last release and the process exits before the heartbeat's delay."""
    code = (
        "import os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'connector_site.settings'); "
        "django.setup(); from pathlib import Path; import sys; "
        "from integrations.base.ratelimit import LocalBudget; "
        "import integrations.base.ratelimit.core as core; core.RELEASE_DELAY = 60.0; "
        "b = LocalBudget('asana:exit', None, 50, 15, directory=Path(sys.argv[1])); "
        "assert b.acquire(write=True) == 0; b.release(write=True); print(b.path)"
    )
    env = {**os.environ, "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert json.loads(path.read_text())["leases"] == {}
