"""Finance controls through the sandboxes (issue 20): the real documents flow, the real webhook path
(sandbox Asana → our view → queue → worker → sandbox Acumatica), asserting both sides — what Acumatica
received (ReleaseBill calls and the amount released) and what Asana shows (approval state, subtasks,
comments) — and the audit rows of each decision."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEntry
from integrations.flows.approvals import holds
from integrations.flows.common.controls.rules import level_of
from integrations.flows.documents.sync import DocumentSync
from integrations.flows.inbound import watchdog
from integrations.models import ControlHold, RecordLink
from mappings.models import UserMapping
from sandbox.asana import DEMO
from tests.flows.inbound.harness import OPT, F, World, world  # noqa: F401

U = DEMO["users"]
PM, CONTROLLER, CLERK = U["alice"], U["carol"], U["bob"]


@pytest.fixture
def w(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    world.acumatica.keep_dispatched = True
    # Bob enters bills in Acumatica (his login is his e-mail); the mapping ties him to his Asana user.
    UserMapping.objects.create(
        tenant=world.tenant, email="bob@demo.example", asana_user_gid=CLERK, acumatica_employee_id="EP0007"
    )
    return world


def configure(w: World, **controls) -> None:
    w.bills_flow.options = {**(w.bills_flow.options or {}), "controls": controls}
    w.bills_flow.save()


TIERS = {
    "enabled": True,
    "tiers": [
        {"name": "small", "above": 0, "up_to": 5000, "levels": [{"name": "PM", "approvers": [PM]}]},
        {
            "name": "large",
            "above": 5000,
            "levels": [{"name": "PM", "approvers": [PM]}, {"name": "Controller", "approvers": [CONTROLLER]}],
        },
    ],
}


def sync(w: World, ref: str) -> None:
    DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process("Bill", ref)


def task_of(ref: str) -> str:
    return RecordLink.objects.filter(acumatica_ref=ref).order_by("-generation").first().asana_task_gid


def releases(w: World) -> list[Decimal]:
    out = []
    for req, status in w.acumatica.dispatched:
        if req.method == "POST" and req.path.endswith("/Bill/ReleaseBill") and status < 300:
            ref = req.json()["entity"]["ReferenceNbr"]["value"]
            out.append(Decimal(str(w.acumatica.record("Bill", "Bill", ref)["Amount"])))
    return out


def comments(w: World, gid: str) -> list[str]:
    return [
        s["text"]
        for s in w.asana.stories.values()
        if s.get("task") == gid and s.get("subtype") == "comment_added"
    ]


def levels(w: World, gid: str) -> dict[int, dict]:
    return {
        level_of(t): {**t, "gid": g}
        for g, t in w.asana.tasks.items()
        if t.get("parent") == gid and level_of(t)
    }


def approved(w: World, gid: str) -> bool:
    return w.asana.task_values(gid)[F["approval_status"]] == OPT["approval_status"]["Approved"]


def approve(w: World, gid: str, user: str) -> None:
    w.clock.now += 5
    w.approve(gid, user=user)
    w.asana.deliver_pending_events()


def approve_level(w: World, gid: str, user: str) -> None:
    w.clock.now += 5
    w.asana.set_approval_status(gid, "approved", user)
    w.asana.deliver_pending_events()


# ---- segregation of duties -----------------------------------------------------------------------


def test_sod_no_release_when_the_approver_entered_the_bill(w: World):
    configure(w, segregation_of_duties={"enabled": True})
    bill = w.acumatica.add_bill("SUBCO", 1200.00, created_by="bob@demo.example")
    ref = bill["ReferenceNbr"]
    sync(w, ref)
    gid = task_of(ref)
    approve(w, gid, CLERK)  # Bob approves his own bill
    assert releases(w) == []
    assert w.acumatica.record("Bill", "Bill", ref)["Status"] == "Balanced"
    assert not approved(w, gid)  # the approval was reset on the task …
    assert any("the approver entered this bill" in c for c in comments(w, gid))  # … saying why
    entry = AuditEntry.objects.get(operation="controls.segregation_of_duties")
    assert entry.status == "quarantined" and entry.record_link.acumatica_ref == ref
    assert (
        "release refused" in RecordLink.objects.get(acumatica_ref=ref).state_reason
    )  # listed for the console
    approve(w, gid, PM)  # someone else approves: released once
    assert releases(w) == [Decimal("1200")]


def test_sod_no_release_by_someone_outside_the_allowed_approvers(w: World):
    configure(w, segregation_of_duties={"enabled": True, "allowed_approvers": [PM]})
    bill = w.acumatica.add_bill("SUBCO", 800.00, created_by="EP0007")
    sync(w, bill["ReferenceNbr"])
    gid = task_of(bill["ReferenceNbr"])
    approve(w, gid, CONTROLLER)
    assert releases(w) == []
    assert any("is not an allowed approver" in c for c in comments(w, gid))
    approve(w, gid, PM)
    assert releases(w) == [Decimal("800")]


def test_sod_allowed_approvers_may_be_an_asana_team(w: World):
    configure(w, segregation_of_duties={"enabled": True, "allowed_team_gid": DEMO["team_finance"]})
    bill = w.acumatica.add_bill("SUBCO", 300.00)
    sync(w, bill["ReferenceNbr"])
    gid = task_of(bill["ReferenceNbr"])
    approve(w, gid, CLERK)  # Bob is not in the Finance team
    assert releases(w) == []
    approve(w, gid, CONTROLLER)  # Carol is
    assert releases(w) == [Decimal("300")]


# ---- amount tiers, approval levels ---------------------------------------------------------------


def test_a_62000_bill_is_released_only_after_the_last_level(w: World):
    configure(w, tiers=TIERS)
    bill = w.acumatica.add_bill("SUBCO", 62000.00)
    ref = bill["ReferenceNbr"]
    sync(w, ref)
    gid = task_of(ref)
    subs = levels(w, gid)
    assert sorted(subs) == [1, 2]
    assert all(
        s["resource_subtype"] == "approval" and s["approval_status"] == "pending" for s in subs.values()
    )
    assert subs[1]["assignee"] == PM and subs[2]["assignee"] == CONTROLLER
    approve(w, gid, PM)
    assert releases(w) == []
    approve_level(w, subs[1]["gid"], PM)
    assert releases(w) == []
    assert any("level 2 (Controller) is pending" in c for c in comments(w, gid))
    approve_level(w, subs[2]["gid"], CONTROLLER)
    assert releases(w) == [Decimal("62000")]
    entry = AuditEntry.objects.filter(operation="controls.approval_levels", status="succeeded").latest("pk")
    assert "level 2 (Controller): approved" in entry.error
    w.asana.deliver_pending_events()
    assert releases(w) == [Decimal("62000")]  # once


def test_a_level_approved_by_someone_else_is_asked_again(w: World):
    configure(w, tiers=TIERS)
    bill = w.acumatica.add_bill("SUBCO", 9000.00)
    sync(w, bill["ReferenceNbr"])
    gid = task_of(bill["ReferenceNbr"])
    subs = levels(w, gid)
    approve(w, gid, PM)
    approve_level(w, subs[1]["gid"], PM)
    approve_level(w, subs[2]["gid"], CLERK)  # not the controller
    assert releases(w) == []
    assert w.asana.tasks[subs[2]["gid"]]["approval_status"] == "pending"
    approve_level(w, subs[2]["gid"], CONTROLLER)
    assert releases(w) == [Decimal("9000")]


def test_a_changed_amount_after_level_1_resets_levels_1_and_2(w: World):
    configure(w, tiers=TIERS)
    bill = w.acumatica.add_bill("SUBCO", 62000.00)
    ref = bill["ReferenceNbr"]
    sync(w, ref)
    gid = task_of(ref)
    subs = levels(w, gid)
    approve(w, gid, PM)
    approve_level(w, subs[1]["gid"], PM)
    w.clock.now += 5
    w.acumatica.update_record("Bill", ("Bill", ref), Amount=64000.00)
    sync(w, ref)
    assert w.asana.tasks[subs[1]["gid"]]["approval_status"] == "pending"
    assert w.asana.tasks[subs[2]["gid"]]["approval_status"] == "pending"
    assert not approved(w, gid)
    assert any("approval levels reset" in c for c in comments(w, gid))
    approve_level(w, subs[2]["gid"], CONTROLLER)
    approve(w, gid, PM)
    assert releases(w) == []  # level 1 is pending again
    approve_level(w, subs[1]["gid"], PM)
    assert releases(w) == [Decimal("64000")]


# ---- duplicate-invoice hold ----------------------------------------------------------------------


def test_a_duplicate_is_held_until_cleared_then_released_once_on_approval(w: World):
    configure(w, duplicates={"enabled": True, "window_days": 30})
    first = w.acumatica.add_bill("SUBCO", 62000.00, vendor_ref="INV-2291")
    sync(w, first["ReferenceNbr"])
    assert not ControlHold.objects.exists()
    second = w.acumatica.add_bill("SUBCO", 62000.00, vendor_ref="inv 2291")  # entered twice
    ref = second["ReferenceNbr"]
    sync(w, ref)
    gid = task_of(ref)
    assert gid  # a likely duplicate still gets its task …
    hold = ControlHold.objects.get(link__acumatica_ref=ref)
    assert f"Bill {first['ReferenceNbr']}" in hold.duplicate_of
    assert any(f"Possible duplicate of Bill {first['ReferenceNbr']}" in c for c in comments(w, gid))
    approve(w, gid, PM)
    assert releases(w) == []  # … and is held
    assert any("duplicate hold" in c for c in comments(w, gid))
    with pytest.raises(holds.HoldError):
        holds.clear_hold(hold.pk, tenant_id=w.tenant.pk, actor="ops", reason="")
    holds.clear_hold(hold.pk, tenant_id=w.tenant.pk, actor="ops", reason="Vendor confirmed a second delivery")
    assert releases(w) == [Decimal("62000")]  # the standing approval releases it once cleared
    assert any("Duplicate hold cleared by ops" in c for c in comments(w, gid))
    cleared = AuditEntry.objects.get(operation="controls.duplicate_hold_cleared")
    assert "Vendor confirmed" in cleared.error and cleared.record_link.acumatica_ref == ref
    approve(w, gid, PM)
    assert releases(w) == [Decimal("62000")]  # once


def test_a_duplicate_cleared_before_approval_is_released_on_approval(w: World):
    configure(w, duplicates={"enabled": True, "window_days": 30})
    w.acumatica.add_bill("SUBCO", 4100.00, date_=__import__("datetime").date(2026, 3, 2))
    sync(w, w.acumatica.add_bill("OTHER", 1.0)["ReferenceNbr"])
    second = w.acumatica.add_bill("SUBCO", 4100.00, date_=__import__("datetime").date(2026, 3, 20))
    sync(w, second["ReferenceNbr"])
    hold = ControlHold.objects.get(link__acumatica_ref=second["ReferenceNbr"])
    assert "amount 4,100.00 within 30 days" in hold.reason
    holds.clear_hold(hold.pk, tenant_id=w.tenant.pk, actor="ops", reason="Two separate deliveries")
    assert releases(w) == []
    approve(w, task_of(second["ReferenceNbr"]), PM)
    assert releases(w) == [Decimal("4100")]


# ---- the dry-run plan ----------------------------------------------------------------------------


def test_the_dry_run_plan_shows_the_tier_and_a_likely_duplicate(w: World, capsys):
    from django.core.management import call_command

    configure(w, tiers=TIERS, duplicates={"enabled": True, "window_days": 30})
    first = w.acumatica.add_bill("SUBCO", 62000.00, vendor_ref="INV-9")
    sync(w, first["ReferenceNbr"])
    w.acumatica.add_bill("SUBCO", 62000.00, vendor_ref="INV-9")
    w.acumatica.add_bill("SUBCO", 1200.00, vendor_ref="INV-10")
    tasks_before = len(w.asana.tasks)
    capsys.readouterr()
    call_command("connector", "sync", "--tenant", "ridgeline", "--flow", "AP bills", "--dry-run")
    out = capsys.readouterr().out
    assert "tier large (> 5,000.00, no upper bound): PM + Controller" in out
    assert "tier small (> 0.00, ≤ 5,000.00): PM" in out
    assert f"would be held: possible duplicate of Bill {first['ReferenceNbr']}" in out
    assert len(w.asana.tasks) == tasks_before and ControlHold.objects.count() == 0  # nothing written
