# ruff: noqa: F811  (pytest fixtures imported from tests.sage100.flow_harness)
"""Approved purchase request → exactly one Sage 100 PO, its number on the task (sandbox Asana in
strict-contract mode + a real Simulated agent on loopback)."""

from __future__ import annotations

from audit.models import AuditEntry
from integrations.flows.purchase_requests import tasks as sage_tasks
from integrations.models import RecordLink
from tests.sage100.flow_harness import OPT, F, pr_world  # noqa: F401


def test_approved_request_becomes_one_po_with_number_status_and_comment(pr_world):
    w = pr_world
    gid = w.request_task()
    outcome = w.process(gid)
    assert outcome == "PO 0000100 created"
    assert w.backend.count_pos(gid) == 1
    po = w.sage_client.get_purchase_order("0000100")
    assert po["external_id"] == gid and po["udf"]["UDF_ASANA_GID"] == gid
    assert po["vendor"]["vendor_no"] == "0000001" and po["lines"][0]["gl_account"] == "5000-01-00"
    assert po["totals"]["amount"] == "1500.00"
    values = w.values(gid)
    assert values[F["po_number"]] == "0000100"
    assert values[F["vendor"]] == "ABC Concrete Supply"
    assert values[F["sage_status"]] == OPT["sage_status"]["PO created"]
    [comment] = w.comments(gid)
    assert "0000100" in comment and "ABC Concrete Supply" in comment
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "linked" and link.sage_po_number == "0000100"
    assert link.approved_snapshot["idempotency_key"] == f"asana-task-{gid}-po-v1"
    entry = AuditEntry.objects.get(operation="purchase_order.create")
    assert entry.status == "succeeded" and entry.record_link_id == link.pk


def test_repeated_approvals_and_replays_make_no_second_po(pr_world):
    w = pr_world
    gid = w.request_task()
    w.process(gid)
    w.asana.ui_update_task(gid, completed=False)
    w.approve(gid)
    assert w.process(gid) == "already ordered: PO 0000100"
    assert sage_tasks.process_purchase_request(w.flow.pk, gid) == "already ordered: PO 0000100"
    assert w.backend.count_pos() == 1 and len(w.comments(gid)) == 1


def test_unapproved_request_is_left_alone(pr_world):
    w = pr_world
    gid = w.request_task(approved=False)
    assert w.process(gid).startswith("not approved")
    assert w.backend.count_pos() == 0 and not RecordLink.objects.exists()


def test_poll_catch_up_creates_once_and_moves_the_cursor(pr_world):
    w = pr_world
    first, second = (
        w.request_task(),
        w.request_task(
            name="Rental", vendor="Metro Equipment Rental", cost=OPT["cost_code"]["6000 Services"]
        ),
    )
    pending = w.request_task(name="Not yet", approved=False)
    report = sage_tasks.poll_purchase_requests(w.flow.pk)
    assert "created" in report
    assert w.backend.count_pos() == 2 and w.backend.count_pos(pending) == 0
    sage_tasks.poll_purchase_requests(w.flow.pk)
    assert w.backend.count_pos() == 2
    assert {w.values(g)[F["po_number"]] for g in (first, second)} == {"0000100", "0000101"}


def test_subtasks_become_lines(pr_world, monkeypatch):
    from integrations.flows.purchase_requests import orders as pro

    w = pr_world
    gid = w.request_task(name="Site materials", amount=None)
    subtasks = [
        {
            "gid": "1",
            "name": "Rebar #4 x 200",
            "completed": False,
            "custom_fields": [{"gid": F["amount"], "resource_subtype": "number", "number_value": 840.5}],
        },
        {
            "gid": "2",
            "name": "Tie wire",
            "completed": False,
            "custom_fields": [{"gid": F["amount"], "resource_subtype": "number", "number_value": 59.5}],
        },
        {"gid": "3", "name": "Cancelled line", "completed": True, "custom_fields": []},
    ]
    monkeypatch.setattr(pro, "_subtasks", lambda asana, task: subtasks)
    assert w.process(gid) == "PO 0000100 created"
    po = w.sage_client.get_purchase_order("0000100")
    assert [ln["description"] for ln in po["lines"]] == ["Rebar #4 x 200", "Tie wire"]
    assert po["totals"]["amount"] == "900.00"


def test_webhook_handler_creates_and_a_lock_becomes_a_scheduled_retry(pr_world):
    from types import SimpleNamespace

    from django_q.models import Schedule

    w = pr_world
    clients = SimpleNamespace(asana=w.asana_client)
    gid = w.request_task()
    w.backend.inject_lock("po_sequence", seconds=120)
    assert "retrying later" in sage_tasks.handle_task_change(w.flow, gid, clients=clients)
    assert Schedule.objects.filter(name=f"sage-pr-retry:{w.flow.pk}:{gid}").exists()
    w.backend.clear_faults()
    assert sage_tasks.handle_task_change(w.flow, gid, clients=clients) == "PO 0000100 created"
    assert w.backend.count_pos() == 1
