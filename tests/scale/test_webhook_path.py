"""`make run`'s layout shows the webhook path working: the embedded default (SQLite, the ORM broker, a
qcluster of two workers, the web process) against sandboxes served over loopback, with the sandbox
Asana delivering events by itself as Asana does (batched, signed, within seconds). A person completes
the approval in the sandbox through its control API — over HTTP, as the playground would — and the bill
is released within seconds, by the delivered event: no catch-up poll, no explicit delivery call.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
import urllib.request

import pytest

from . import scenario
from .deployment import Deployment, SqliteDatabase, postgres_server_url
from .sandboxes import F, start_sandboxes

pytestmark = pytest.mark.slow
pytest.importorskip("setproctitle", reason='pip install -e ".[test]" (setproctitle)')

APPROVED = scenario.APPROVED
RELEASE_WITHIN = 30.0  # seconds: Asana delivers within ~1 s, a worker picks the event up at once


def control(base_url: str, name: str, **params) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the loopback sandbox
        f"{base_url}/_sandbox/{name}", data=json.dumps(params).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())["data"]


@pytest.mark.skipif(postgres_server_url() is not None, reason="make run's layout is the embedded default")
def test_completing_the_approval_in_the_sandbox_releases_the_bill_by_webhook_within_seconds(tmp_path):
    deployment = Deployment(tmp_path, SqliteDatabase(tmp_path), redis_url=None, workers=2)
    variant = scenario.Variant(
        clusters=1, workers=2, bills=6, purchase_orders=0, kills=0, changes=0, approvals=0, timeout=120.0
    )
    sandboxes = start_sandboxes()
    proof = scenario.ScaleOut(deployment, sandboxes, variant, random.Random(scenario.scenario_seed()))
    deployment.database.create()
    sandboxes.asana.start_delivery()  # as `connector sandbox` does: Asana delivers by itself
    try:
        proof.install()
        proof.sync()
        proof.dep.driver("enqueue", [["register_webhooks", proof.info["tenant"]]])
        proof.wait("wait-webhook", {})
        acu = sandboxes.acumatica
        balanced = sorted(k for k, r in acu.records["Bill"].items() if r["Status"] == "Balanced")
        doc_type, number = balanced[0]
        (gid,) = proof.tasks_by_reference()[f"{doc_type}/{number}"]
        approved_at = time.monotonic()
        control(
            sandboxes.asana_url, "person_edit_task", gid=gid, custom_fields={F["approval_status"]: APPROVED}
        )
        while acu.record("Bill", doc_type, number)["Status"] != "Open":
            assert time.monotonic() - approved_at < RELEASE_WITHIN, "the approval was not acted on in time"
            time.sleep(0.25)
        took = time.monotonic() - approved_at
        releases = [p for m, p, status in acu.request_log if m == "POST" and p.endswith("/Bill/ReleaseBill")]
        assert len(releases) == 1, releases
        # What released it was the event Asana delivered, not the catch-up poll's look at the project.
        keys: list = []
        deadline = time.monotonic() + 15  # the worker records the release just after Acumatica did it
        while not keys and time.monotonic() < deadline:
            with sqlite3.connect(tmp_path / "ml-connector.sqlite3") as db:
                keys = db.execute(
                    "SELECT e.dedupe_key FROM audit_auditentry a JOIN audit_inboundevent e "
                    "ON e.id = a.inbound_event_id "
                    "WHERE a.operation = 'bill.release' AND a.status = 'succeeded'"
                ).fetchall()
            time.sleep(0.25)
        assert keys and not any((k or "").startswith("asana:poll:") for (k,) in keys), keys
        print(f"webhook path: approval → bill Open in {took:.1f} s")
    except BaseException:
        print(deployment.tails())
        raise
    finally:
        sandboxes.asana.stop_delivery()
        deployment.stop_all()
        if not os.environ.get("SCALE_KEEP_DATABASE"):
            deployment.database.drop()
        sandboxes.close()
