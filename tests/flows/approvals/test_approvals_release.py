"""Approval → release through the webhook path (sandbox Asana → our view → queue → worker → sandbox
Acumatica), and the edge cases of issue 5: on hold, pending approval, already released, changed after
approval, rejected approval, a 202 that never finishes. Each asserts the effect in the sandboxes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django_q.models import Schedule

from audit.models import AuditEntry, InboundEvent
from integrations.flows.approvals import release as approvals
from integrations.flows.dispatch import process_asana_event
from integrations.flows.inbound import watchdog
from integrations.models import AcumaticaConnection, Flow, RecordLink
from tests.flows.inbound.harness import DEMO, OPT, F, World, world  # noqa: F401


def release_calls(w: World, action: str = "ReleaseBill") -> int:
    return sum(1 for m, p, _ in w.acumatica.request_log if m == "POST" and p.endswith(f"/Bill/{action}"))


def comments(w: World, gid: str) -> list[str]:
    return w.asana.comments(gid)  # comments only: every change leaves a story too


@pytest.fixture
def registered(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()  # the first heartbeat
    return world


def approve_and_deliver(w: World, gid: str, how: str = "enum") -> None:
    w.clock.now += 1  # people click a second apart: events differ in created_at (their only "id", §6.4)
    w.approve(gid, how=how)
    w.asana.deliver_pending_events()


def test_approved_balanced_bill_is_released_once_with_outcome_on_the_task(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 1200.50, vendor_ref="INV-1")
    gid, link = w.bill_task(bill)
    approve_and_deliver(w, gid)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    assert release_calls(w) == 1
    assert w.asana.task_values(gid)[F["document_status"]] == OPT["document_status"]["Open"]
    assert len(comments(w, gid)) == 1 and "Released" in comments(w, gid)[0]
    entry = AuditEntry.objects.get(operation="bill.release")
    assert entry.status == "succeeded" and entry.record_link_id == link.pk
    link.refresh_from_db()
    # What the approval was bound to (the ERP reference field holds the natural key, not a figure).
    assert link.approved_snapshot["values"] == {"Amount": "1200.50", "Vendor": "ABCCONCRETE"}
    assert link.approved_snapshot["approved_by"] == DEMO["users"]["alice"]
    event = InboundEvent.objects.filter(status=InboundEvent.Status.PROCESSED, dedupe_key__isnull=False).get()
    assert "released" in event.status_reason
    # Our own write-backs came back as events and were ignored: no loop, nothing re-released.
    w.asana.deliver_pending_events()
    assert release_calls(w) == 1


def test_duplicate_events_and_repeated_approvals_release_exactly_once(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 99.00)
    gid, _ = w.bill_task(bill)
    approve_and_deliver(w, gid)
    w.asana.ui_update_task(gid, DEMO["users"]["carol"], name="Bill (touched)")
    w.asana.ui_update_task(gid, DEMO["users"]["carol"], custom_fields={F["vendor"]: "ABCCONCRETE"})
    w.asana.deliver_pending_events()
    for row in InboundEvent.objects.filter(dedupe_key__isnull=False):
        process_asana_event(row.pk)  # replaying every stored event changes nothing
    assert release_calls(w) == 1
    assert len(comments(w, gid)) == 1


def test_bill_on_hold_is_taken_off_hold_then_released(registered: World):
    w = registered
    bill = w.acumatica.add_bill("STEELWORKS", 500.00, status="On Hold")
    gid, _ = w.bill_task(bill)
    approve_and_deliver(w, gid)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    assert w.bill(bill["ReferenceNbr"])["Hold"] is False
    assert any(m == "PUT" and p.endswith("/Bill") for m, p, _ in w.acumatica.request_log)


def test_pending_approval_without_approval_maps_fails_clearly(registered: World):
    w = registered
    bill = w.acumatica.add_bill("SUMMITELEC", 800.00, status="Pending Approval")
    gid, link = w.bill_task(bill)
    approve_and_deliver(w, gid)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Pending Approval"
    assert release_calls(w) == 0 and release_calls(w, "Approve") == 0
    entry = AuditEntry.objects.get(operation="bill.release")
    assert entry.status == "failed" and "approval maps" in entry.error
    link.refresh_from_db()
    assert "approval maps" in link.state_reason
    assert "Release failed" in comments(w, gid)[0]


def test_pending_approval_with_approval_maps_is_approved_then_released(registered: World):
    w = registered
    AcumaticaConnection.objects.filter(tenant=w.tenant).update(uses_approval_maps=True)
    bill = w.acumatica.add_bill("SUMMITELEC", 800.00, status="Pending Approval")
    gid, _ = w.bill_task(bill)
    approve_and_deliver(w, gid)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    assert (release_calls(w, "Approve"), release_calls(w)) == (1, 1)


def test_already_released_bill_is_done_without_acting(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 75.00)
    gid, _ = w.bill_task(bill)
    w.acumatica.update_record("Bill", ("Bill", bill["ReferenceNbr"]), Status="Open")
    approve_and_deliver(w, gid)
    assert release_calls(w) == 0
    assert AuditEntry.objects.get(operation="bill.release").status == "succeeded"
    assert w.asana.task_values(gid)[F["document_status"]] == OPT["document_status"]["Open"]


def test_amount_changed_after_approval_is_refused_flagged_and_reopened(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 1000.00)
    gid, link = w.bill_task(bill)
    # The approver sees 1000.00; someone changes the bill in Acumatica before the release runs.
    w.clock.now += 1
    w.approve(gid)
    w.acumatica.update_record("Bill", ("Bill", bill["ReferenceNbr"]), Amount=1900.00)
    w.asana.deliver_pending_events()
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Balanced"
    assert release_calls(w) == 0
    entry = AuditEntry.objects.get(operation="bill.release")
    assert entry.status == "quarantined"
    assert entry.field_diff == {"Amount": {"approved": "1000.00", "now": "1900.00"}}
    link.refresh_from_db()
    assert "changed after approval" in link.state_reason
    assert w.asana.task_values(gid)[F["approval_status"]] is None  # reopened: a fresh approval is needed
    assert "Not released" in comments(w, gid)[0]


def test_rejected_approval_task_is_not_approval(registered: World):
    w = registered
    Flow.objects.filter(kind=Flow.Kind.ASANA_APPROVALS).update(approval_rule=Flow.ApprovalRule.COMPLETED)
    bill = w.acumatica.add_bill("ABCCONCRETE", 10.00)
    gid, _ = w.bill_task(bill, approval=True)
    for status in ("rejected", "changes_requested"):
        approve_and_deliver(w, gid, how=status)
        assert w.asana.tasks[gid]["completed"] is True
    assert release_calls(w) == 0
    approve_and_deliver(w, gid, how="approved")
    assert release_calls(w) == 1


def test_release_that_never_finishes_is_outcome_unknown_and_reread_before_acting_again(registered: World):
    w = registered
    w.acumatica.release_polls = None  # the 202 never turns into 204 within the deadline:
    w.acumatica.operation_seconds = 3600  # the release runs for an hour on the sandbox's clock
    bill = w.acumatica.add_bill("ABCCONCRETE", 42.00)
    gid, link = w.bill_task(bill)
    approve_and_deliver(w, gid)
    entry = AuditEntry.objects.get(operation="bill.release")
    assert entry.status == "retrying" and "outcome unknown" in entry.error
    assert release_calls(w) == 1
    retry = Schedule.objects.get(func="integrations.flows.dispatch.process_asana_event")
    link.refresh_from_db()
    assert link.attempt_started_at is None  # the lease is given back
    event_id, attempt = eval(f"({retry.args})")
    # Still running: Acumatica refuses the session meanwhile (§5.2) → the retry reschedules, acts on nothing.
    assert process_asana_event(event_id, attempt).startswith("retrying")
    # Acumatica finishes the release server-side; the next retry re-reads and does not release again.
    assert w.acumatica.control("complete_long_operations") == 1
    assert w.acumatica.record("Bill", "Bill", bill["ReferenceNbr"])["Status"] == "Open"
    assert "released" in process_asana_event(event_id, attempt + 1)
    assert release_calls(w) == 1
    assert AuditEntry.objects.filter(operation="bill.release", status="succeeded").count() == 1


def test_approval_withdrawn_before_release_drops_the_snapshot(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 10.00, status="Pending Approval")
    gid, link = w.bill_task(bill)
    approve_and_deliver(w, gid)  # fails: no approval maps; snapshot kept
    link.refresh_from_db()
    assert link.approved_snapshot["values"]
    w.clock.now += 1
    w.asana.ui_update_task(
        gid, DEMO["users"]["alice"], custom_fields={F["approval_status"]: OPT["approval_status"]["Pending"]}
    )
    w.asana.deliver_pending_events()
    link.refresh_from_db()
    assert link.approved_snapshot == {}


def test_rule_evaluation_is_pure():
    flow = Flow(approval_rule=Flow.ApprovalRule.APPROVAL_STATUS)
    approval = {"resource_subtype": "approval", "completed": True}
    assert approvals.approval_verdict(flow, {**approval, "approval_status": "approved"})[0]
    assert not approvals.approval_verdict(flow, {**approval, "approval_status": "rejected"})[0]
    assert not approvals.approval_verdict(flow, {"resource_subtype": "default_task", "completed": True})[0]
    flow.approval_rule = Flow.ApprovalRule.COMPLETED
    assert approvals.approval_verdict(flow, {"resource_subtype": "default_task", "completed": True})[0]
    assert not approvals.approval_verdict(flow, {**approval, "approval_status": "changes_requested"})[0]


def test_unlinked_task_is_ignored(registered: World):
    w = registered
    gid = w.asana.add_task(DEMO["ap_project"], "Not a bill")
    approve_and_deliver(w, gid)
    assert release_calls(w) == 0
    assert not RecordLink.objects.exists()


def test_approval_made_while_the_task_was_not_yet_linked_is_released_once_the_task_is_adopted(
    registered: World, monkeypatch
):
    """A worker dies between Asana creating the task and the connector storing its GID: the task is in
    Asana, unlinked. A person approves it; that change finds no RecordLink (nothing to act on). The next
    document sync adopts the task by its ERP reference, and the approval must then be acted on: the
    catch-up poll will not bring it back, it has already seen that change."""
    from integrations.flows.documents.sync import DocumentSync

    w = registered
    # The document flow writes its own "Bill/<nbr>" key to the ERP reference field: no mapping of it.
    w.bills_flow.field_mappings.filter(source_path="ReferenceNbr").delete()
    bill = w.acumatica.add_bill("ABCCONCRETE", 310.00, vendor_ref="INV-31")
    ref = bill["ReferenceNbr"]

    def sync() -> DocumentSync:
        flow = Flow.objects.get(pk=w.bills_flow.pk)
        return DocumentSync(
            flow,
            acumatica=w.clients.acumatica,
            asana=w.clients.asana,
            now=lambda: datetime.fromtimestamp(w.clock.now, UTC),
        )

    def killed(self, *args, **kwargs):
        raise RuntimeError("worker killed after Asana created the task")

    with monkeypatch.context() as m:
        m.setattr(DocumentSync, "store_created", killed)
        with pytest.raises(RuntimeError):
            sync().process("Bill", ref)
    (gid,) = [g for g in w.asana.tasks if w.asana.task_values(g).get(F["erp_reference"]) == f"Bill/{ref}"]
    assert RecordLink.objects.get().asana_task_gid == ""

    approve_and_deliver(w, gid)
    events = InboundEvent.objects.filter(status=InboundEvent.Status.PROCESSED, dedupe_key__isnull=False)
    assert [e.status_reason for e in events] == ["no linked Acumatica document"]
    assert release_calls(w) == 0

    w.clock.now += 600  # past the create lease: the next sync reconciles instead of waiting
    outcome = sync().process("Bill", ref)
    assert "adopted task" in " ".join(outcome.notes)
    link = RecordLink.objects.get()
    assert link.asana_task_gid == gid
    assert w.bill(ref)["Status"] == "Open"
    assert release_calls(w) == 1
    entry = AuditEntry.objects.get(operation="bill.release")
    assert entry.status == "succeeded" and entry.record_link_id == link.pk
    # The check is queued once per adoption: syncing again or replaying events releases nothing twice.
    sync().process("Bill", ref)
    for row in InboundEvent.objects.filter(dedupe_key__isnull=False):
        process_asana_event(row.pk)
    assert release_calls(w) == 1
