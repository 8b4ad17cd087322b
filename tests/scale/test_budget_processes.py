"""One rate budget under real worker processes (issue 15 hole 4, issue 18's dead-lease freeze).

- Five processes call through the HTTP base on one local budget for 30 s while a sixth reads the
  state file under the shared lock (as a look does) as fast as it can: it is valid at every read, no
  call fails, the pace holds exactly (GCRA: k+1 grants never closer than k intervals minus the burst
  allowance, so no sliding minute — nor any shorter window — holds more than the budget), the
  in-flight cap holds.
- A process SIGKILLed while holding the only slot: the others, frozen meanwhile (and the dashboard
  says by whom), go on within a second or two of its death — not after the lease's TTL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from integrations.base.ratelimit import LocalBudget, RedisBudget
from integrations.base.ratelimit.core import BURST_FRACTION, SAFETY

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class Processes:
    def __init__(self, workdir: Path, cfg: dict):
        self.workdir, self.cfg, self.procs = workdir, cfg, {}

    def start(self, role: str, name: str) -> subprocess.Popen:
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="connector_site.settings_test")
        with open(self.workdir / f"log-{name}", "w") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.scale.budget_worker", role, name, json.dumps(self.cfg)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs[name] = proc
        return proc

    def wait_ready(self, names, timeout=60.0) -> None:
        deadline = time.monotonic() + timeout
        while not all((self.workdir / f"ready-{n}").exists() for n in names):
            for n in names:
                assert self.procs[n].poll() is None, self.tail(n)
            assert time.monotonic() < deadline, "processes did not start"
            time.sleep(0.05)

    def go(self, seconds: float) -> float:
        until = time.time() + seconds
        # Atomically: a worker polling for the file must never read it empty (created, not yet written).
        (self.workdir / "go.tmp").write_text(str(until))
        os.replace(self.workdir / "go.tmp", self.workdir / "go")
        return until

    def finish(self, names, timeout: float) -> None:
        for n in names:
            assert self.procs[n].wait(timeout) == 0, self.tail(n)

    def tail(self, name: str) -> str:
        return f"{name}: " + (self.workdir / f"log-{name}").read_text()[-3000:]

    def kill_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def calls(self, names) -> tuple[list[tuple[float, float, float]], list[str]]:
        """(granted, sent, done) of every call, by grant; and the failures."""
        spans, failures = [], []
        for n in names:
            for line in (self.workdir / f"calls-{n}").read_text().splitlines():
                if line.startswith("FAIL"):
                    failures.append(f"{n}: {line}")
                else:
                    spans.append(tuple(float(x) for x in line.split()))
        return sorted(spans), failures


def gcra_excess(grants: list[float], interval: float, tolerance: float) -> float:
    """The largest amount by which any run of grants came faster than the pace allows (≤ 0: never).

    GCRA admits grant j after grant i only if t_j ≥ t_i + (j−i)·interval − tolerance."""
    worst, lowest = float("-inf"), float("inf")
    for k, t in enumerate(grants):
        u = k * interval - t
        worst = max(worst, u - lowest - tolerance)
        lowest = min(lowest, u)
    return worst


def most_overlapping(spans: list[tuple[float, float, float]]) -> int:
    """The most calls in flight at once, from sent to done (inside each lease)."""
    edges = sorted([(s, 1) for _, s, _ in spans] + [(e, -1) for _, _, e in spans], key=lambda x: (x[0], x[1]))
    best = current = 0
    for _, step in edges:
        current += step
        best = max(best, current)
    return best


def max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_five_processes_hammering_one_local_budget_keep_it_valid_exact_and_never_fail(tmp_path):
    per_minute, cap, seconds, workers = 900, 2, 30.0, [f"w{i}" for i in range(5)]
    directory = tmp_path / "budgets"
    key = f"asana:hammer:{uuid.uuid4().hex[:8]}"
    budget = LocalBudget(key, per_minute, cap, None, directory=directory)
    cfg = {
        "key": key,
        "per_minute": per_minute,
        "max_in_flight": cap,
        "directory": str(directory),
        "state_path": str(budget.path),
        "workdir": str(tmp_path),
        "hold": 0.03,
        "deadline": 20.0,
    }
    procs = Processes(tmp_path, cfg)
    try:
        for name in workers:
            procs.start("worker", name)
        procs.start("checker", "checker")
        procs.wait_ready([*workers, "checker"])
        procs.go(seconds)
        procs.finish([*workers, "checker"], timeout=seconds + 60)
    finally:
        procs.kill_all()

    spans, failures = procs.calls(workers)
    assert failures == []  # no call failed for the budget's sake
    checker = json.loads((tmp_path / "checker.json").read_text())
    assert checker["bad_count"] == 0, checker["bad"]  # valid at every read under the shared lock
    assert checker["reads"] >= 100 and checker["most_leases"] <= cap
    final = json.loads(budget.path.read_text())
    assert final["leases"] == {} and final["key"] == key  # every slot given back

    grants = [granted for granted, _, _ in spans]
    interval = 60.0 / (per_minute * SAFETY)
    tolerance = (per_minute * BURST_FRACTION - 1) * interval
    assert gcra_excess(grants, interval, tolerance) <= 1e-6
    assert max_in_window(grants, 60.0) <= per_minute
    assert max_in_window(grants, 10.0) <= per_minute / 6 + per_minute * BURST_FRACTION
    assert most_overlapping(spans) <= cap
    # The budget bites (the workers could go far faster) and is used, not starved.
    assert len(grants) >= 0.8 * per_minute * SAFETY * seconds / 60


@pytest.mark.parametrize("store", ["local", "redis"])
def test_a_worker_killed_holding_the_only_slot_frees_it_at_once(tmp_path, store):
    redis_url = os.environ.get("REDIS_URL", "")
    if store == "redis" and not redis_url:
        pytest.skip("REDIS_URL is not set")
    workers = ["w0", "w1", "w2"]
    key = f"acumatica:kill:{uuid.uuid4().hex[:8]}"
    directory = tmp_path / "budgets"
    cfg = {
        "key": key,
        "max_in_flight": 1,
        "directory": str(directory),
        "redis_url": redis_url if store == "redis" else "",
        "workdir": str(tmp_path),
        "hold": 0.01,
        "deadline": 20.0,
        "write_share": 1.0,
    }
    if store == "redis":
        look = RedisBudget(key, None, 1, None, redis_url=redis_url)
    else:
        look = LocalBudget(key, None, 1, None, directory=directory)
    procs = Processes(tmp_path, cfg)
    try:
        victim = procs.start("victim", "victim")
        for name in workers:
            procs.start("worker", name)
        procs.wait_ready(workers)
        marker = tmp_path / "victim-holds"
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert victim.poll() is None and time.monotonic() < deadline, procs.tail("victim")
            time.sleep(0.05)
        procs.go(10.0)
        time.sleep(2.0)
        frozen = look.status()  # what the dashboard shows during the freeze
        assert frozen.full
        assert [(lease.pid, lease.alive) for lease in frozen.leases] == [(victim.pid, True)]
        assert all(not (tmp_path / f"calls-{n}").read_text() for n in workers)  # everyone waits
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.time()  # not reaped yet: a zombie is dead all the same
        procs.finish(workers, timeout=60)
        after = look.status()
    finally:
        procs.kill_all()
        if store == "redis":
            look.redis.delete(*(look.state_key + s for s in ("", ":leases", ":writes", ":holders")))

    spans, failures = procs.calls(workers)
    assert failures == []
    assert spans and spans[0][0] - killed_at < 2.0  # not the lease's TTL
    assert most_overlapping(spans) <= 1
    assert len(spans) >= 50  # and they kept going
    assert victim.pid not in [lease.pid for lease in after.leases]
