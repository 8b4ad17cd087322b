# ruff: noqa: F811  (pytest fixtures imported from tests.sage100.flow_harness)
"""Sage 100 PO changes → the linked tasks; a PO that disappears is flagged (link, audit, task)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.models import AuditEntry
from integrations.flows.po_status import tasks as sage_tasks
from integrations.models import Flow, RecordLink
from tests.sage100.flow_harness import OPT, F, pr_world  # noqa: F401


@pytest.fixture
def status_flow(pr_world):
    return Flow.objects.create(
        tenant=pr_world.tenant,
        name="Sage PO status",
        kind=Flow.Kind.SAGE100_PO_STATUS,
        asana_project_gid=pr_world.flow.asana_project_gid,
        options={"overlap_seconds": 300},
    )


def test_changed_po_updates_the_task_once(pr_world, status_flow):
    w = pr_world
    gid = w.request_task()
    w.process(gid)
    sage_tasks.poll_po_status(status_flow.pk, reconcile=False)
    # Sage users print (O) then the order is complete (X)
    w.backend.touch_po("0000100", status="X", at=datetime.now(UTC) + timedelta(minutes=1))
    report = sage_tasks.poll_po_status(status_flow.pk, reconcile=False)
    assert "updated" in report or "unchanged" in report
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "closed" and link.last_payload["status"] == "X"
    assert w.values(gid)[F["sage_status"]] == OPT["sage_status"]["PO created"]
    # the overlap window repeats the row: nothing is written again
    puts = sum(1 for r in w.asana.requests if r.method == "PUT")
    assert sage_tasks.poll_po_status(status_flow.pk, reconcile=False) in ("unchanged: 1", "no changes")
    assert sum(1 for r in w.asana.requests if r.method == "PUT") == puts


def test_status_change_to_a_differently_mapped_value_is_written(pr_world, status_flow):
    w = pr_world
    gid = w.request_task()
    w.process(gid)
    from integrations.models import Flow as _Flow  # noqa: F401
    from mappings.models import ValueMapping

    vm = ValueMapping.objects.get(field_mapping__flow=w.flow, source_value="B")
    vm.target_value = OPT["sage_status"]["Not sent"]  # a deliberately different option, to see the write
    vm.save()
    w.backend.touch_po("0000100", status="B", at=datetime.now(UTC) + timedelta(minutes=2))
    sage_tasks.poll_po_status(status_flow.pk, reconcile=False)
    assert w.values(gid)[F["sage_status"]] == OPT["sage_status"]["Not sent"]


def test_vanished_po_is_flagged(pr_world, status_flow):
    w = pr_world
    gid = w.request_task()
    w.process(gid)
    w.backend.delete_po("0000100")
    report = sage_tasks.poll_po_status(status_flow.pk, reconcile=True)
    assert "vanished: 1" in report
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "deleted" and "no longer exists" in link.state_reason
    assert AuditEntry.objects.filter(operation="purchase_order.vanished", record_link=link).count() == 1
    assert w.values(gid)[F["sage_status"]] == OPT["sage_status"]["Error"]
    assert w.values(gid)[F["po_number"]] == "0000100"  # kept for reference
    assert any("no longer exists" in c for c in w.comments(gid))
    # flagged once; a new approval does not silently create a second PO
    sage_tasks.poll_po_status(status_flow.pk, reconcile=True)
    assert AuditEntry.objects.filter(operation="purchase_order.vanished").count() == 1
    assert w.process(gid).startswith("PO 0000100 was deleted")


def test_lost_create_answer_is_adopted_by_the_status_poll(pr_world, status_flow):
    w = pr_world
    gid = w.request_task()
    w.backend.inject_unknown_outcome(calls=1)
    with pytest.raises(Exception):  # noqa: B017 - the unknown outcome
        w.process(gid)
    sage_tasks.poll_po_status(status_flow.pk, reconcile=False)
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "linked" and link.sage_po_number == "0000100"
    assert w.values(gid)[F["po_number"]] == "0000100"
    assert w.backend.count_pos() == 1


def test_agent_down_is_reported_not_raised(pr_world, status_flow):
    w = pr_world
    w.sage_client.max_retries = 0
    w.agent.stop()
    assert sage_tasks.poll_po_status(status_flow.pk).startswith("agent not reachable")


def test_every_scheduled_pass_records_a_run_for_the_dashboard(pr_world, status_flow):
    from audit.models import SyncRun

    sage_tasks.poll_po_status(status_flow.pk)
    run = SyncRun.objects.get(flow=status_flow)
    assert (run.trigger, run.status) == ("schedule", "succeeded") and run.finished_at is not None
    pr_world.sage_client.max_retries = 0
    pr_world.agent.stop()
    sage_tasks.poll_po_status(status_flow.pk)
    assert SyncRun.objects.filter(flow=status_flow).latest("pk").status == "failed"
