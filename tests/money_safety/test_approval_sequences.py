"""Money safety I, as the sequences people and clocks cause: an approval releases only the document the
approver saw. Every test runs the real documents flow and the real webhook path (sandbox Asana → our
view → queue → worker → sandbox Acumatica) and asserts the effect in the sandboxes: how many ReleaseBill
calls Acumatica received, and the bill's amount when it was released."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEntry
from integrations.flows.documents.sync import DocumentSync
from integrations.flows.inbound import watchdog
from integrations.flows.inbound.tasks import poll_approvals
from integrations.models import RecordLink
from tests.flows.inbound.harness import OPT, F, World, world  # noqa: F401


@pytest.fixture
def w(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()  # the handshake's first heartbeat
    world.acumatica.keep_dispatched = True
    return world


def sync(w: World, ref: str) -> None:
    DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process("Bill", ref)


def task_of(w: World, ref: str) -> str:
    link = RecordLink.objects.filter(acumatica_ref=ref).order_by("-generation").first()
    return link.asana_task_gid


def releases(w: World) -> list[Decimal]:
    """The bill's amount at each ReleaseBill Acumatica applied (read from the request's target bill)."""
    out = []
    for req, status in w.acumatica.dispatched:
        if req.method == "POST" and req.path.endswith("/Bill/ReleaseBill") and status < 300:
            ref = req.json()["entity"]["ReferenceNbr"]["value"]
            out.append(Decimal(str(w.acumatica.record("Bill", "Bill", ref)["Amount"])))
    return out


def hold_events(w: World) -> list:
    """Asana's deliveries are late: take the queued events out of every webhook's queue."""
    held = []
    for hook in w.asana.webhooks.values():
        held.append((hook, list(hook["queue"])))
        hook["queue"] = []
    return held


def deliver_late(w: World, held: list) -> None:
    for hook, events in held:
        hook["queue"] = events + hook["queue"]
    w.asana.deliver_pending_events()


def tick(w: World, seconds: float = 5) -> None:
    w.clock.now += seconds


def comments(w: World, gid: str) -> list[str]:
    return [
        s["text"]
        for s in w.asana.stories.values()
        if s.get("task") == gid and s.get("subtype") == "comment_added"
    ]


def test_a_delayed_approval_never_releases_an_amount_raised_after_it(w: World):
    bill = w.acumatica.add_bill("ABCCONCRETE", 1000.00)
    ref = bill["ReferenceNbr"]
    sync(w, ref)
    gid = task_of(w, ref)
    tick(w)
    w.approve(gid)  # the approver sees 1,000.00
    held = hold_events(w)  # … and the approval's delivery is late (or a 429 made it wait)
    tick(w)
    w.acumatica.update_record("Bill", ("Bill", ref), Amount=19000.00)
    sync(w, ref)  # the documents flow writes 19,000.00 onto the approved task
    assert w.asana.task_values(gid)[F["amount"]] == 19000.0
    # one visible step: approval reset, a comment naming old → new, the console's "changed after approval"
    assert w.asana.task_values(gid)[F["approval_status"]] != OPT["approval_status"]["Approved"]
    assert any("1000.00 → 19000.00" in c for c in comments(w, gid))
    assert AuditEntry.objects.filter(operation="changed_after_approval").count() == 1
    tick(w)
    deliver_late(w, held)
    assert releases(w) == []
    tick(w)
    w.approve(gid)  # a new approval, of 19,000.00
    w.asana.deliver_pending_events()
    assert releases(w) == [Decimal("19000")]


def test_without_the_reset_an_approval_older_than_the_write_still_binds_nothing(w: World, monkeypatch):
    """Belt and braces: even if the reset never reached Asana, the approval's Asana time decides."""
    from integrations.flows.documents import sync as acumatica_documents

    monkeypatch.setattr(acumatica_documents.ApprovalGuard, "changes", lambda self, changes: changes)
    bill = w.acumatica.add_bill("ABCCONCRETE", 1000.00)
    ref = bill["ReferenceNbr"]
    sync(w, ref)
    gid = task_of(w, ref)
    tick(w)
    w.approve(gid)
    held = hold_events(w)
    tick(w)
    w.acumatica.update_record("Bill", ("Bill", ref), Amount=19000.00)
    sync(w, ref)
    assert w.asana.task_values(gid)[F["approval_status"]] == OPT["approval_status"]["Approved"]
    deliver_late(w, held)
    assert releases(w) == []
    entry = AuditEntry.objects.filter(operation="bill.release").latest("pk")
    assert entry.status == "quarantined" and "before the connector wrote the current values" in entry.error
    # The refusal asked for a new approval; the catch-up poll sees the same approval again: still nothing.
    poll_approvals(w.tenant.pk)
    assert releases(w) == []


def test_a_reused_bill_number_never_inherits_the_old_approval(w: World):
    bill = w.acumatica.add_bill("ABCCONCRETE", 500.00, reference_nbr="RB-77")
    sync(w, "RB-77")
    old_gid = task_of(w, "RB-77")
    tick(w)
    w.approve(old_gid)
    held = hold_events(w)
    # the bill is deleted in Acumatica (the push is lost: deletions reach us only by push) …
    del w.acumatica.records["Bill"][("Bill", "RB-77")]
    # … and the clerk enters bill RB-77 again, same vendor and amount (manual numbering)
    tick(w)
    w.acumatica.add_bill("ABCCONCRETE", 500.00, reference_nbr="RB-77")
    sync(w, "RB-77")
    links = list(RecordLink.objects.filter(acumatica_ref="RB-77").order_by("generation"))
    assert [(x.generation, x.state) for x in links] == [(1, "deleted"), (2, "linked")]
    new_gid = links[1].asana_task_gid
    assert new_gid and new_gid != old_gid
    assert w.asana.tasks[old_gid]["completed"] is True  # the old task was closed, with a comment
    deliver_late(w, held)  # the old approval arrives
    poll_approvals(w.tenant.pk)  # and the catch-up poll lists the old task too
    assert releases(w) == []
    assert w.acumatica.record("Bill", "Bill", "RB-77")["Status"] == "Balanced"
    tick(w)
    w.approve(new_gid)
    w.asana.deliver_pending_events()
    assert releases(w) == [Decimal("500")]
    assert bill["id"] != w.acumatica.record("Bill", "Bill", "RB-77")["id"]


def test_an_approval_on_a_deleted_bills_task_acts_on_nothing(w: World):
    w.acumatica.add_bill("ABCCONCRETE", 42.00, reference_nbr="RB-78")
    sync(w, "RB-78")
    gid = task_of(w, "RB-78")
    del w.acumatica.records["Bill"][("Bill", "RB-78")]
    sync(w, "RB-78")  # the deletion is seen (push): the link ends, the task is closed
    assert RecordLink.objects.get(acumatica_ref="RB-78").state == RecordLink.State.DELETED
    w.acumatica.add_bill("ABCCONCRETE", 42.00, reference_nbr="RB-78")  # re-entered, not yet synced
    tick(w)
    w.asana.ui_update_task(gid, None, completed=False)
    w.approve(gid)
    w.asana.deliver_pending_events()
    assert releases(w) == []


def test_the_catch_up_poll_runs_on_asanas_clock_when_ours_is_ten_minutes_ahead(w: World):
    w.clock.now -= 600  # Asana's clock is 10 minutes behind the connector's
    bill = w.acumatica.add_bill("ABCCONCRETE", 310.00)
    sync(w, bill["ReferenceNbr"])
    gid = task_of(w, bill["ReferenceNbr"])
    poll_approvals(w.tenant.pk)  # the first pass sets the cursor
    tick(w, 30)
    w.approve(gid)
    hold_events(w)  # the delivery is lost for good
    tick(w, 60)
    poll_approvals(w.tenant.pk)
    assert releases(w) == [Decimal("310")]


def test_figures_typed_into_the_task_are_not_what_was_approved(w: World):
    bill = w.acumatica.add_bill("ABCCONCRETE", 1000.00)
    sync(w, bill["ReferenceNbr"])
    gid = task_of(w, bill["ReferenceNbr"])
    tick(w)
    w.asana.ui_update_task(gid, None, custom_fields={F["amount"]: 100.0})  # a person edits the figure
    tick(w)
    w.approve(gid)
    w.asana.deliver_pending_events()
    assert releases(w) == []
    assert "other figures" in AuditEntry.objects.filter(operation="bill.release").latest("pk").error
