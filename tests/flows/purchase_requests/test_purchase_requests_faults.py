# ruff: noqa: F811  (pytest fixtures imported from tests.sage100.flow_harness)
"""Faults between the connector and the agent: a lock lasting minutes, the agent down for hours, the
answer lost after Sage wrote the PO. Each ends with exactly one PO and nothing lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from audit.models import AuditEntry
from integrations.base import errors
from integrations.flows.purchase_requests import tasks as sage_tasks
from integrations.models import Cursor, RecordLink
from tests.sage100.flow_harness import F, pr_world  # noqa: F401


def test_lock_for_minutes_reschedules_with_retry_after_then_creates_once(pr_world):
    w = pr_world
    gid = w.request_task()
    w.backend.inject_lock("vendor:00-0000001", seconds=300)
    result = sage_tasks.process_purchase_request(w.flow.pk, gid)
    assert result.startswith("retrying later")
    retry = Schedule.objects.get(name=f"sage-pr-retry:{w.flow.pk}:{gid}")
    assert retry.func == "integrations.flows.purchase_requests.tasks.process_purchase_request"
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "creating" and link.failure_count == 1 and "locked" in link.state_reason.lower()
    assert AuditEntry.objects.filter(operation="purchase_order.create", status="retrying").count() == 1
    assert w.backend.count_pos() == 0
    w.backend.clear_faults()
    assert sage_tasks.process_purchase_request(w.flow.pk, gid) == "PO 0000100 created"
    assert w.backend.count_pos(gid) == 1 and w.values(gid)[F["po_number"]] == "0000100"


def test_agent_down_for_hours_loses_nothing(pr_world, tmp_path):
    w = pr_world
    gid = w.request_task()
    w.sage_client.max_retries = 0
    w.agent.stop()
    with pytest.raises(errors.Unavailable):
        w.process(gid)  # validation reads fail: nothing claimed, the cursor will not pass the task
    report = sage_tasks.poll_purchase_requests(w.flow.pk)
    assert "retrying" in report and not RecordLink.objects.exists()
    # hours later the agent is back on the same port with the same company
    from sage100_agent.server import create_app, start_in_thread
    from tests.sage100.conftest import agent_config

    w.agent = start_in_thread(create_app(agent_config(tmp_path)), port=w.agent.port)
    report = sage_tasks.poll_purchase_requests(w.flow.pk)
    assert "created" in report
    assert w.backend.count_pos(gid) == 1 and w.values(gid)[F["po_number"]] == "0000100"


def test_agent_down_after_the_claim_is_swept_by_the_poll(pr_world, tmp_path, monkeypatch):
    w = pr_world
    gid = w.request_task()
    real_create = w.sage_client.create_purchase_order

    def down(*args, **kwargs):
        raise errors.Unavailable("connection refused", system="sage100", outcome_unknown=True)

    monkeypatch.setattr(w.sage_client, "create_purchase_order", down)
    with pytest.raises(errors.Unavailable):
        w.process(gid)
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "creating" and link.approved_snapshot["payload"]["external_id"] == gid
    monkeypatch.setattr(w.sage_client, "create_purchase_order", real_create)
    RecordLink.objects.filter(pk=link.pk).update(attempt_started_at=None)
    sage_tasks.poll_purchase_requests(w.flow.pk)
    assert w.backend.count_pos(gid) == 1
    assert RecordLink.objects.get(pk=link.pk).sage_po_number == "0000100"


def test_lost_answer_after_write_ends_with_exactly_one_po(pr_world):
    w = pr_world
    gid = w.request_task()
    w.backend.inject_unknown_outcome(calls=1)
    with pytest.raises(errors.Unavailable) as caught:
        w.process(gid)
    assert caught.value.outcome_unknown
    assert w.backend.count_pos(gid) == 1  # Sage wrote it
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "creating" and link.sage_po_number == ""
    # the retry (a repeated approval, the poll, or the scheduled retry) looks it up first
    assert w.process(gid) == "PO 0000100 reconciled"
    assert w.backend.count_pos() == 1 and w.values(gid)[F["po_number"]] == "0000100"
    assert len(w.comments(gid)) == 1


def test_lost_answer_seen_by_the_scheduled_retry(pr_world):
    w = pr_world
    gid = w.request_task()
    w.backend.inject_unknown_outcome(calls=1)
    assert sage_tasks.process_purchase_request(w.flow.pk, gid).startswith("retrying later")
    assert sage_tasks.process_purchase_request(w.flow.pk, gid) == "PO 0000100 reconciled"
    assert w.backend.count_pos() == 1


def test_second_worker_with_another_key_gets_the_existing_po(pr_world):
    w = pr_world
    gid = w.request_task()
    w.process(gid)
    link = RecordLink.objects.get(asana_task_gid=gid)
    # an operator resets the link by mistake: the agent still refuses a second PO for this task
    RecordLink.objects.filter(pk=link.pk).update(
        state="quarantined", sage_po_number="", payload_hash="x", last_payload={}
    )
    assert w.process(gid) == "PO 0000100 reconciled"
    assert w.backend.count_pos() == 1


def test_a_create_resumed_by_the_poll_is_in_the_records_lineage(pr_world, monkeypatch):
    w = pr_world
    gid = w.request_task()
    w.backend.inject_unknown_outcome(calls=1)
    with pytest.raises(errors.Unavailable):
        w.process(gid)
    link = RecordLink.objects.get(asana_task_gid=gid)
    RecordLink.objects.filter(pk=link.pk).update(attempt_started_at=None)
    # The task itself is older than the poll's window: only the sweep of links left `creating` sees it.
    later = datetime.fromtimestamp(w.clock.now + 3600, UTC).isoformat()
    Cursor.objects.update_or_create(
        tenant=w.tenant, stream=f"{w.flow.kind}:{w.flow.pk}", defaults={"value": later}
    )
    sage_tasks.poll_purchase_requests(w.flow.pk)
    assert w.backend.count_pos(gid) == 1
    entry = AuditEntry.objects.get(operation="purchase_order.create", status="succeeded")
    assert entry.record_link_id == link.pk and "PO 0000100" in entry.error
    assert AuditEntry.objects.filter(operation="purchase_request.writeback", record_link=link).exists()


def test_a_rate_limited_listing_does_not_crash_the_poll_and_the_next_pass_creates(pr_world):
    w = pr_world
    gid = w.request_task()
    w.asana.faults.add("status", method="GET", path="^/tasks$", status=429, retry_after=90, times=20)
    assert "not polled, the next pass retries" in sage_tasks.poll_all()
    assert w.backend.count_pos() == 0
    w.asana.faults.clear()
    assert "created" in sage_tasks.poll_all()
    assert w.backend.count_pos(gid) == 1


def test_a_retry_that_fails_again_schedules_the_next_one(pr_world):
    """django-q2 keeps a ONCE schedule after it fired (repeats=0): the retry that failed again must not
    take it for one still pending, or the request would wait for the next poll pass (or forever)."""
    from django_q.scheduler import scheduler

    w = pr_world
    gid = w.request_task()
    name = f"sage-pr-retry:{w.flow.pk}:{gid}"
    pending = Schedule.objects.filter(name=name).exclude(repeats=0)
    w.backend.inject_lock("vendor:00-0000001", seconds=3600)
    assert sage_tasks.process_purchase_request(w.flow.pk, gid).startswith("retrying later")
    for _ in range(2):  # the retry fires (sync mode: its task runs at once) and meets the lock again
        pending.update(next_run=timezone.now() - timedelta(seconds=1))
        scheduler(broker=object())
        assert pending.count() == 1 and pending.get().next_run > timezone.now()
    assert AuditEntry.objects.filter(operation="purchase_order.create", status="retrying").count() == 3
    w.backend.clear_faults()
    pending.update(next_run=timezone.now() - timedelta(seconds=1))
    scheduler(broker=object())
    assert w.backend.count_pos(gid) == 1 and w.values(gid)[F["po_number"]] == "0000100"
    assert not pending.exists()
