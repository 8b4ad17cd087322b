"""The embedded default end to end under faults: SQLite, the ORM broker, the file budget, a qcluster of two
workers, the web process and the sandboxes over loopback — `make run`'s layout (issue 15 hole 4).

200 bills (and a few purchase orders) are pushed and polled while the sandbox Asana answers 429 to some
reads and creates and loses the answer of some creates (applied, then the connection hangs), the sandbox
Acumatica answers 429 to some reads, and a busy worker is SIGKILLed. At the end: one Asana task per
document and none missing (scenario.check), every injected fault was met, each lost answer ended at the
create's attempt deadline as "may have been applied" (and was reconciled, not repeated), and the budget
files are valid JSON that no process ever had to rebuild.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3

import pytest

from integrations.base.ratelimit.local import parse_state

from . import scenario
from .deployment import Deployment, SqliteDatabase, postgres_server_url
from .sandboxes import CREATE_LEASE_SECONDS, documents, start_sandboxes

pytestmark = pytest.mark.slow
pytest.importorskip("setproctitle", reason='pip install -e ".[test]" (setproctitle)')

ASANA_429_READS, ASANA_429_CREATES, LOST_CREATES, ACUMATICA_429_READS = 12, 6, 3, 6


def inject_faults(sandboxes) -> None:
    asana, acu = sandboxes.asana, sandboxes.acumatica
    asana.faults.add(
        "status", method="POST", path=r"/tasks$", status=429, retry_after=1, times=ASANA_429_CREATES
    )
    asana.faults.add("drop_after_write", method="POST", path=r"/tasks$", times=LOST_CREATES)
    asana.faults.add("status", method="GET", path=r"/tasks", status=429, retry_after=1, times=ASANA_429_READS)
    acu.faults.add(
        "status", method="GET", path=r"/Bill", status=429, retry_after=1, times=ACUMATICA_429_READS
    )


@pytest.mark.skipif(postgres_server_url() is not None, reason="the embedded default runs on SQLite")
def test_200_bills_on_the_embedded_default_with_two_workers_429s_and_lost_answers(tmp_path):
    deployment = Deployment(tmp_path, SqliteDatabase(tmp_path), redis_url=None, workers=2)
    variant = scenario.Variant(
        clusters=1, workers=2, bills=200, purchase_orders=10, kills=1, changes=10, approvals=0, timeout=240.0
    )
    rng = random.Random(scenario.scenario_seed())
    sandboxes = start_sandboxes()
    proof = scenario.ScaleOut(deployment, sandboxes, variant, rng)
    deployment.database.create()
    try:
        proof.install()
        inject_faults(sandboxes)
        proof.sync()
        proof.recover()
        # A create whose worker was killed may wait for Asana's search index (the flow looks again
        # in about 90 s before it creates): the documents must all end linked, not by a deadline.
        proof.wait("wait-links", {"at_least": len(documents(sandboxes.acumatica)), "timeout": 240})
        proof.wait("wait-drained", {})
        report = proof.check()  # one task per document, none missing, no task failure
        assert not sandboxes.asana.faults.pending and not sandboxes.acumatica.faults.pending
        statuses = [status for _m, _p, status in sandboxes.asana.request_log]
        assert statuses.count(429) >= ASANA_429_READS + ASANA_429_CREATES
        budgets = sorted((tmp_path / "var" / "ratelimit").glob("*.json"))
        assert budgets, "the deployment used no local budget"
        for path in budgets:
            state = parse_state(path.read_bytes())  # valid JSON, a budget state
            assert json.loads(path.read_text())["key"] == state["key"]
        # Each lost answer ended at the create's attempt deadline (well inside its lease), not after the
        # 60 s read timeout, and said the create may have been applied: reconciled, never repeated.
        with sqlite3.connect(tmp_path / "ml-connector.sqlite3") as db:
            lost = db.execute(
                "SELECT duration_ms FROM audit_apicall WHERE method = 'POST' AND status_code IS NULL "
                "AND error LIKE '%DeadlineExceeded%may have been applied%'"
            ).fetchall()
        # (a worker SIGKILLed while it waited for a lost answer records nothing: the kill may pick it)
        assert LOST_CREATES - variant.kills <= len(lost) <= LOST_CREATES, lost
        assert all(ms < CREATE_LEASE_SECONDS * 1000 for (ms,) in lost), lost
        logs = deployment.log_text()
        assert "not a valid budget state" not in logs and "JSONDecodeError" not in logs
        print(f"embedded default: {len(report['links'])} documents, {len(budgets)} budget files, faults met")
    except BaseException:
        print(deployment.tails())
        raise
    finally:
        deployment.stop_all()
        if not os.environ.get("SCALE_KEEP_DATABASE"):
            deployment.database.drop()
        sandboxes.close()
