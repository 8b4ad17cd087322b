"""Issue 15 hole 5: one long Acumatica action per session, enforced across processes.

A real deployment (SQLite + the ORM broker, a `manage.py qcluster` of two workers, tests/scale's
machinery) syncs bills to Asana while its workers release other bills through the product's client.
Every worker shares the connection's one OAuth grant — one Acumatica session (reference §2.1) — and the
served sandbox refuses and records any request that reaches the session while a release runs there
(§5.2). The proof: no overlap recorded, every bill released exactly once, every synced bill linked.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

from tests.scale.deployment import Deployment, SqliteDatabase, postgres_server_url
from tests.scale.sandboxes import seed_documents, start_sandboxes, tenant_document

pytestmark = pytest.mark.slow
RELEASES = 8
SYNCS = 16


@pytest.mark.skipif(postgres_server_url() is not None, reason="runs in the SQLite step (make test)")
def test_two_workers_never_overlap_a_release_in_the_shared_session(tmp_path):
    sandboxes = start_sandboxes()
    acu = sandboxes.acumatica
    acu.release_polls = None  # a release takes real time on the sandbox's clock, polled or not
    acu.operation_seconds = 0.5
    # Every read of a document spends a moment on its way in (the API queue, §6.3): the window
    # between a worker's decision to send and the request reaching the session is wide open.
    acu.faults.add("latency", method="GET", path=r"/Bill/Bill/", delay=0.08, times=10**6)
    deployment = Deployment(tmp_path, SqliteDatabase(tmp_path), redis_url=None, workers=2)
    started = time.monotonic()
    try:
        seed_documents(acu, random.Random(15), bills=RELEASES + SYNCS, purchase_orders=0)
        balanced = sorted(k for k, r in acu.records["Bill"].items() if r["Status"] == "Balanced")
        to_release, to_sync = balanced[:RELEASES], balanced[RELEASES : RELEASES + SYNCS]
        deployment.manage("migrate", "--noinput")
        deployment.manage("createcachetable")
        config = tmp_path / "tenant.json"
        config.write_text(json.dumps(tenant_document(sandboxes)))
        deployment.manage("connector", "config", "apply", str(config))
        info = deployment.driver("info")
        deployment.start_clusters(1)
        calls = []
        for n, key in enumerate(to_sync):
            calls.append(["process_document", info["flows"]["acumatica_bills"], *key])
            if n < len(to_release):
                calls.append(["release_bill", info["acumatica_connection"], *to_release[n]])
        deployment.run("-m", "tests.sandbox.acumatica_workers", "enqueue", json.dumps(calls))
        # A task that waited its inline limit at the gate runs again later (rescheduled): wait for the
        # outcomes themselves, then for the deployment to fall quiet.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            acu.record("Bill", *key)["Status"] != "Open" for key in to_release
        ):
            time.sleep(0.25)
        linked = deployment.driver("wait-links", {"at_least": len(to_sync), "timeout": 60}, timeout=90)
        assert linked.get("ok"), linked
        drained = deployment.driver("wait-drained", {"quiet": 2.0, "timeout": 60}, timeout=90)
        assert drained.get("ok"), drained
        report = deployment.driver("report")

        assert acu.overlaps == [], f"requests reached the session during a release: {acu.overlaps[:5]}"
        releases = Counter(op["bill"] for op in acu.operations.values())
        assert releases == Counter(to_release), releases  # each bill released exactly once
        assert all(acu.record("Bill", *key)["Status"] == "Open" for key in to_release)
        linked = {(link["type"], link["ref"]) for link in report["links"] if link["gid"]}
        assert set(to_sync) <= linked, sorted(set(to_sync) - linked)
        assert not report["task_failures"], report["task_failures"][:3]
        assert len(acu.grants) == 1  # one grant, one session shared by both workers
        print(f"session rule: {len(calls)} tasks on 2 workers in {time.monotonic() - started:.0f}s")
    except BaseException:
        print(deployment.tails())
        raise
    finally:
        deployment.stop_all()
        sandboxes.close()
