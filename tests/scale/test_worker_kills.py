"""Worker kills and a wedge on a real 2-worker cluster, watched through `/healthz` (issue 18).

A real deployment (PostgreSQL, Redis broker, waitress web process, `manage.py qcluster` with two
workers) syncs bills from the served Acumatica sandbox into the served Asana sandbox, in batches:

    1. busy kill   a worker SIGKILLed in the middle of a task (its title says "processing"), while the
                   first batch runs: the other worker goes on (the dead one's budget leases are freed)
    2. idle kill   once both workers say idle, one of them SIGKILLed blindly: the one blocked reading
                   the task queue (holding its reader lock; django-q2 as shipped waits for that lock for
                   ever), the one waiting for that lock, or one caught part-way through reading a
                   message (the sentinel then moves the cluster to a new task queue); the next batch is
                   then queued and must be taken up
    3. wedge       both workers SIGSTOPped mid-batch while more tasks are queued: the cluster's
                   sentinel still heartbeats, so only the work checks can tell. `/healthz` must answer
                   503 within 2 minutes, naming the stalled workers
    4. recover     SIGCONT: `/healthz` ok again, everything queued is done, then the operator's
                   scheduled poll pass picks up what the killed busy worker left

Measured and asserted: the longest time without any task finishing while work remained (< 30 s —
the wedge excepted, it is deliberate), time to red, time to green, and on the sandbox: every bill
has exactly one Asana task, every bill one linked RecordLink. Thresholds are shortened through the
deployment's environment (HEALTH_WORKER_IDLE_SECONDS=15); the product defaults stay as they are.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import pytest

from . import scenario
from .deployment import Deployment, PostgresDatabase, is_descendant, postgres_server_url, scale_redis_url
from .sandboxes import CREATE_LEASE_SECONDS, documents, start_sandboxes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(
        postgres_server_url() is None or scale_redis_url() is None,
        reason="needs DATABASE_URL=postgres://… and REDIS_URL (CI step 2)",
    ),
]
pytest.importorskip("setproctitle", reason='pip install -e ".[test]" (setproctitle: busy/idle titles)')

WORKER_IDLE = 15  # HEALTH_WORKER_IDLE_SECONDS for this deployment (the default is 120)
BATCHES = (100, 50, 110)  # bills queued per batch; the third is queued during the wedge
MAX_STALL = 30.0
IN_FLIGHT_SLOT = "acumatica:"  # the connection's in-flight budget (max_concurrency), not its counters
MAX_TO_RED = 120.0
MAX_TO_GREEN = 60.0


def healthz(base: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as answer:
        return answer.code, json.loads(answer.read())


def wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as fh:
            return fh.read()
    except OSError:
        return ""


class Kills:
    def __init__(self, deployment: Deployment, proof: scenario.ScaleOut, rng: random.Random):
        self.dep, self.proof, self.rng = deployment, proof, rng
        self.marks: dict[str, float] = {}  # wall-clock instants (epoch s), comparable to Task.stopped
        self.figures: dict[str, Any] = {}
        scale = sorted(
            (t, n)
            for (kind, t, n), record in documents(proof.sb.acumatica).items()
            if kind == "bill" and str(record.get("Description", "")).startswith("Scale bill")
        )
        assert len(scale) == sum(BATCHES)
        self.rng.shuffle(scale)
        self.batches: list[list[tuple[str, str]]] = []
        start = 0
        for size in BATCHES:
            self.batches.append(scale[start : start + size])
            start += size

    # ---- helpers ---------------------------------------------------------------------------------
    def enqueue(self, batch: list[tuple[str, str]]) -> None:
        flow = self.proof.flow("acumatica_bills")
        self.dep.driver("enqueue", [["process_document", flow, t, n] for t, n in batch])

    def workers(self) -> list[int]:
        ours = [p.pid for name, p in self.dep.processes.items() if name.startswith("qcluster")]
        return sorted(
            pid
            for cluster in self.dep.driver("clusters")
            for pid in cluster["workers"]
            if any(is_descendant(pid, root) for root in ours)
        )

    def wait_workers(self, count: int, without: set[int]) -> list[int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = self.workers()
            if len(pids) == count and not set(pids) & without:
                return pids
            time.sleep(0.25)
        raise AssertionError(f"the cluster did not respawn its workers: {pids}, killed {without}")

    def completions(self) -> list[float]:
        return [stopped for stopped, _ok, _func in self.dep.driver("completions")]

    # ---- 1. a busy worker killed -------------------------------------------------------------------
    def busy_kill(self) -> None:
        self.marks["batch1"] = time.time()
        self.enqueue(self.batches[0])
        self.proof.wait("wait-links", {"at_least": len(self.batches[0]) // 4})
        held = self.kill_a_lease_holder()
        self.marks["busy_kill"] = killed = time.time()
        dead = self.proof.killed[-1]
        # the connection's one in-flight slot: the other worker, refused, takes it back from the dead
        slot = [lease["budget"] for lease in held if lease["budget"].startswith(IN_FLIGHT_SLOT)]
        while any(lease["pid"] == dead and lease["budget"] in slot for lease in self.dep.driver("leases")):
            assert time.time() - killed < MAX_STALL, f"the dead worker's slot is still held: {held}"
            time.sleep(0.05)
        if slot:
            self.figures["dead_slot_freed_after"] = round(time.time() - killed, 2)
        self.proof.wait("wait-drained", {})
        self.marks["batch1_done"] = time.time()

    def kill_a_lease_holder(self) -> list[dict[str, Any]]:
        """SIGKILL a worker that is running a task *and* holds a rate-budget lease (the Acumatica
        connection allows one call in flight here, so that lease alone would freeze every worker).
        The session's counters (holders, users) are leases too, but they never refuse anyone: a dead
        holder's is taken back by the next reader of the count, or expires (LEASE_TTL).

        Each candidate is frozen (SIGSTOP) while its title and the leases are read, so what is read is
        what it holds when it dies; if none is caught holding a lease in time, a busy one is killed."""
        deadline = time.monotonic() + 30
        while True:
            late = time.monotonic() > deadline - 15  # then a lease of the session's counters will do
            for pid in self.rng.sample(self.workers(), 2):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    title = scenario.process_title(pid)
                    held = [lease for lease in self.dep.driver("leases") if lease["pid"] == pid]
                    wanted = [lease for lease in held if late or lease["budget"].startswith(IN_FLIGHT_SLOT)]
                    if " processing " in title and (wanted or time.monotonic() > deadline):
                        os.kill(pid, signal.SIGKILL)
                        self.proof.killed.append(pid)
                        self.figures["busy_kill"] = {
                            "task": title.split(" processing ")[1][:80],
                            "leases": [f"{lease['budget']} held {lease['age']:.2f}s" for lease in held],
                        }
                        print(f"SIGKILLed busy worker {pid}: {self.figures['busy_kill']}")
                        return held
                    os.kill(pid, signal.SIGCONT)
            assert time.monotonic() < deadline + 10, "no worker of ours was busy to be killed"
            time.sleep(0.01)

    # ---- 2. an idle worker killed ------------------------------------------------------------------
    def idle_kill(self) -> None:
        pids = self.wait_workers(2, set(self.proof.killed))
        deadline = time.monotonic() + 30
        while True:
            idle = [p for p in pids if scenario.process_title(p).rstrip().endswith(" idle")]
            if len(idle) == len(pids):
                break
            assert time.monotonic() < deadline, {p: scenario.process_title(p) for p in pids}
            time.sleep(0.2)
        # Blindly: the one blocked reading the task queue (it holds the reader lock), the one waiting
        # for that lock, or one still reading the last message of the batch (its title says idle
        # before it reads): the sentinel gives the lock back, or moves the cluster to a new task queue.
        victim = self.rng.choice(idle)
        blocked_in = wchan(victim)
        os.kill(victim, signal.SIGKILL)
        self.proof.killed.append(victim)
        self.figures["idle_kill"] = {"pid": victim, "wchan": blocked_in.strip("0\n") or "hidden"}
        print(f"SIGKILLed idle worker {victim}, blocked in {blocked_in or '?'}")
        self.marks["idle_kill"] = time.time()
        self.enqueue(self.batches[1])
        # django-q2 as shipped never takes another task here: the dead reader kept the queue's lock
        answer = self.dep.driver(
            "wait-links", {"at_least": len(self.batches[0]) + 1, "timeout": MAX_STALL}, timeout=MAX_STALL + 30
        )
        assert answer["ok"], f"no task taken within {MAX_STALL:.0f} s of the idle worker's death"

    # ---- 3. the wedge ------------------------------------------------------------------------------
    def wedge(self) -> None:
        before = len(self.batches[0])
        self.proof.wait("wait-links", {"at_least": before + len(self.batches[1]) // 3})
        self.enqueue(self.batches[2])
        self.stopped = self.wait_workers(2, set(self.proof.killed))
        for pid in self.stopped:
            os.kill(pid, signal.SIGSTOP)
        wedged = self.marks["wedge"] = time.time()
        first_red = None
        while time.time() - wedged < MAX_TO_RED + 30:
            status, body = healthz(self.dep.web_url)
            work = body["checks"].get("work", {})
            workers = work.get("items", {}).get("workers", {})
            if status != 200 and first_red is None:
                first_red = time.time()
                self.figures["first_503_reason"] = {k: c.get("error") for k, c in body["checks"].items()}
            if workers.get("level") == "red":
                self.marks["red"] = time.time()
                self.figures["red_reason"] = workers.get("reason")
                self.figures["cluster_check_while_wedged"] = body["checks"]["cluster"]
                break
            time.sleep(1)
        self.figures["to_first_503"] = round(first_red - wedged, 1) if first_red else None
        assert "red" in self.marks, f"/healthz did not report the stalled workers: {status} {body}"
        assert status == 503
        self.figures["to_red"] = round(self.marks["red"] - wedged, 1)

    # ---- 4. recovery --------------------------------------------------------------------------------
    def recover(self) -> None:
        for pid in self.stopped:
            os.kill(pid, signal.SIGCONT)
        resumed = self.marks["resume"] = time.time()
        while True:
            status, body = healthz(self.dep.web_url)
            if status == 200:
                self.marks["green"] = time.time()
                break
            assert time.time() - resumed < MAX_TO_GREEN, f"/healthz still not ok: {body}"
            time.sleep(0.5)
        self.figures["to_green"] = round(self.marks["green"] - resumed, 1)
        self.proof.wait("wait-drained", {"timeout": 150})
        self.marks["drained"] = time.time()
        # what the killed busy worker left: the scheduled poll, once its create claim's lease passed
        self.proof.wait("wait-claims", {"lease": CREATE_LEASE_SECONDS + 1})
        self.dep.driver("enqueue", [["poll_flow", self.proof.flow("acumatica_bills")]])
        self.proof.wait("wait-drained", {})
        status, body = healthz(self.dep.web_url)
        assert status == 200, body

    # ---- measurements and invariants -------------------------------------------------------------
    def stalls(self) -> dict[str, float]:
        """Per window in which work remained, the longest time without any task finishing."""
        done = self.completions()

        def longest(start: float, end: float | None = None) -> float:
            """From `start`, through every completion, to `end` (None: the last completion; work
            remained until then)."""
            until = end if end is not None else max(done)
            points = [start, *(t for t in done if start < t <= until)]
            if end is not None:
                points.append(end)
            return round(max(b - a for a, b in zip(points, points[1:], strict=False)), 1)

        batch1 = [t for t in done if t <= self.marks["batch1_done"]]
        return {
            "batch 1 (busy worker killed)": longest(self.marks["batch1"], max(batch1)),
            "after the busy kill": longest(self.marks["busy_kill"], max(batch1)),
            "after the idle kill, to the wedge": longest(self.marks["idle_kill"], self.marks["wedge"]),
            "after the wedge": longest(
                self.marks["resume"], max(t for t in done if t <= self.marks["drained"])
            ),
        }

    def check(self) -> None:
        """Every queued bill has exactly one Asana task (in the sandbox) and one linked RecordLink;
        no bill at all has two tasks, and no task is for something that is not a bill or PO."""
        tasks = self.proof.tasks_by_reference()
        bills = {(t, n) for (kind, t, n) in documents(self.proof.sb.acumatica) if kind == "bill"}
        queued = [b for batch in self.batches for b in batch]
        counts = {f"{t}/{n}": len(tasks.get(f"{t}/{n}", [])) for t, n in queued}
        wrong = {ref: n for ref, n in counts.items() if n != 1}
        assert not wrong, f"bills without exactly one Asana task: {dict(list(wrong.items())[:10])}"
        twice = {ref: gids for ref, gids in tasks.items() if len(gids) > 1}
        assert not twice, f"documents with more than one task: {twice}"
        report = self.dep.driver("report")
        links = Counter((link["type"], link["ref"]) for link in report["links"] if link["kind"] == "bill")
        assert set(queued) <= set(links) <= bills and set(links.values()) == {1}
        unlinked = [link for link in report["links"] if link["state"] != "linked"]
        assert not unlinked, unlinked[:5]
        for link in report["links"]:
            assert tasks[f"{link['type']}/{link['ref']}"] == [link["gid"]]
        self.figures["bills"] = len(queued)
        self.figures["task_failures"] = report["task_failures"][:5]


def test_killed_and_wedged_workers_on_postgres_and_redis(tmp_path):
    deployment = Deployment(
        tmp_path, PostgresDatabase(postgres_server_url()), redis_url=scale_redis_url(), workers=2
    )
    deployment.env.update(HEALTH_WORKER_IDLE_SECONDS=str(WORKER_IDLE))
    rng = random.Random(scenario.scenario_seed())
    sandboxes = start_sandboxes()
    variant = scenario.Variant(
        clusters=1, workers=2, bills=sum(BATCHES), purchase_orders=0, kills=1, changes=0, approvals=0
    )
    proof = scenario.ScaleOut(deployment, sandboxes, variant, rng)
    # one Acumatica call in flight per connection: a lease a dead worker kept would stop every worker
    proof.acumatica_settings = {"max_concurrency": 1}
    deployment.database.create()
    started = time.monotonic()
    try:
        proof.install()
        status, body = healthz(deployment.web_url)
        assert status == 200, body
        kills = Kills(deployment, proof, rng)
        for phase in (kills.busy_kill, kills.idle_kill, kills.wedge, kills.recover):
            phase()
            print(f"  {phase.__name__}: done at {time.monotonic() - started:.1f}s")
        kills.check()
        stalls = kills.stalls()
        lines = deployment.log_text().splitlines()
        freed = [line for line in lines if "died holding the" in line or "died reading from the" in line]
        kills.figures.update(stalls=stalls, locks_freed=freed, seconds=round(time.monotonic() - started))
        print("worker kills:", json.dumps(kills.figures, indent=1, default=str))
        assert max(stalls.values()) < MAX_STALL, stalls
        assert kills.figures["to_red"] <= MAX_TO_RED
        if "pipe_read" in kills.figures["idle_kill"]["wchan"]:
            assert freed, "the idle worker held the task queue's reader lock: the sentinel must free it"
        proof.check_respawned()
    except BaseException:
        print(deployment.tails())
        raise
    finally:
        deployment.stop_all()
        deployment.forget_broker_keys()
        if not os.environ.get("SCALE_KEEP_DATABASE"):
            deployment.database.drop()
        sandboxes.close()
