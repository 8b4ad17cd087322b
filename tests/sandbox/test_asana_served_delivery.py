"""The served sandbox Asana delivers webhook events by itself, as Asana does (§6.4–6.5): batched and
signed within seconds, retried with back-off, heartbeats, and deletion after the failure window."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox import asana as asana_sim

from .served import Receiver, served

D = asana_sim.DEMO
AP = D["ap_project"]


@pytest.fixture
def world():
    sim = asana_sim.build_demo(
        "http://127.0.0.1:0/api/1.0", strict_contract=True, allow_localhost=True, max_delivery_failures=0
    )
    with served(sim) as base, Receiver() as receiver:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {D['pat']}"
        sim.start_delivery(batch_delay=0.5, tick=0.05)
        try:
            yield sim, base, session, receiver
        finally:
            sim.stop_delivery()


def _hook_and_task(base, session, receiver):
    made = session.post(
        f"{base}/webhooks", json={"data": {"resource": AP, "target": receiver.url}}, timeout=10
    )
    assert made.status_code == 201, made.text
    task = session.post(
        f"{base}/tasks",
        json={"data": {"name": "Bill 7", "projects": [AP], "resource_subtype": "approval"}},
        timeout=10,
    )
    assert task.status_code == 201, task.text
    return made.json()["data"]["gid"], task.json()["data"]["gid"]


def _approval_events(batches, task_gid):
    return [
        e
        for b in batches
        if not b.get("failed")
        for e in b["events"]
        if e["resource"]["gid"] == task_gid and (e.get("change") or {}).get("field") == "approval_status"
    ]


def test_a_persons_approval_arrives_signed_and_batched_without_anyone_asking(world):
    sim, base, session, receiver = world
    _hook, task = _hook_and_task(base, session, receiver)
    assert receiver.wait_for(lambda b: {"events": []} in b, timeout=15), "no first heartbeat"
    started = time.monotonic()
    answer = session.post(f"{base}/_sandbox/person_approve", json={"gid": task}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert receiver.wait_for(lambda b: _approval_events(b, task), timeout=15)
    # Batched for 0.5 s then sent: seconds, not the catch-up poll's minutes (slack for a busy machine).
    assert time.monotonic() - started < 8
    assert receiver.bad_signatures == 0
    (event,) = _approval_events(receiver.batches, task)
    assert event["action"] == "changed" and event["user"]["gid"] == answer.json()["data"]["user"]
    # One batch carried the approval with the task's other news (added, completed, the story).
    batch = next(b for b in receiver.batches if event in b["events"])
    assert len(batch["events"]) > 1
    # Nothing stays queued once delivered.
    assert all(not w["queue"] for w in sim.webhooks.values())


def test_failed_deliveries_are_retried_with_backoff_then_the_webhook_is_deleted(world):
    sim, base, session, receiver = world
    hook, task = _hook_and_task(base, session, receiver)
    assert receiver.wait_for(lambda b: {"events": []} in b, timeout=15)
    receiver.fail_next = 2
    session.post(f"{base}/_sandbox/set_clock_rate", json={"rate": 600}, timeout=10)  # 10 minutes a second
    session.post(f"{base}/_sandbox/person_approve", json={"gid": task}, timeout=10)
    assert receiver.wait_for(lambda b: _approval_events(b, task), timeout=20), receiver.batches
    failed = [b for b in receiver.batches if b.get("failed")]
    assert len(failed) == 2 and _approval_events([{"events": failed[0]["events"]}], task)
    # The receiver saw the batch a moment before the sandbox records the success: wait for it.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sim.webhooks[hook]["delivery_retry_count"]:
        time.sleep(0.05)
    got = session.get(f"{base}/webhooks/{hook}", timeout=10).json()["data"]
    assert got.get("last_failure_at") and got["last_success_at"] >= got["last_failure_at"], got

    # A target that fails for 24 hours of Asana's clock loses its webhook (heartbeats fail too).
    receiver.fail_next = 10_000
    session.post(f"{base}/_sandbox/set_clock_rate", json={"rate": 40_000}, timeout=10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and hook in sim.webhooks:
        time.sleep(0.1)
    assert hook not in sim.webhooks
    assert session.get(f"{base}/webhooks/{hook}", timeout=10).status_code == 404
    attempts = [b for b in receiver.batches if b.get("failed")]
    assert 4 <= len(attempts) < 40  # back-off, not a retry storm


def test_heartbeats_every_eight_hours_of_asanas_clock(world):
    sim, base, session, receiver = world
    _hook_and_task(base, session, receiver)
    assert receiver.wait_for(lambda b: b.count({"events": []}) >= 1, timeout=15)
    session.post(f"{base}/_sandbox/set_clock_rate", json={"rate": 28_800}, timeout=10)  # 8 hours a second
    assert receiver.wait_for(lambda b: b.count({"events": []}) >= 3, timeout=20)
