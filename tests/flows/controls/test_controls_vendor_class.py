# ruff: noqa: F811  (pytest fixtures imported from the controls and inbound harness modules)
"""Approval tiers by vendor class (issue 20), through the sandboxes: the vendor's class is read from
Acumatica's Vendor (VendorClass) where the tier is chosen — the task's creation with its level subtasks,
the release, the dry-run plan — once per vendor and pass; two bills of the same amount from vendors of
different classes fall into different tiers, asserted on Asana's subtasks and on ReleaseBill."""

from __future__ import annotations

from decimal import Decimal

from audit.models import AuditEntry
from integrations.flows.documents.sync import DocumentSync
from tests.flows.controls.test_controls_sandbox import (
    CONTROLLER,
    PM,
    approve,
    approve_level,
    configure,
    levels,
    releases,
    task_of,
    w,  # noqa: F401  (the fixture)
)
from tests.flows.inbound.harness import World, world  # noqa: F401

TIERS = {
    "enabled": True,
    "tiers": [
        {"name": "general", "above": 0, "levels": [{"name": "PM", "approvers": [PM]}]},
        {
            "name": "subcontract",
            "above": 0,
            "vendor_class": "SUBCONTR",
            "levels": [{"name": "PM", "approvers": [PM]}, {"name": "Controller", "approvers": [CONTROLLER]}],
        },
    ],
}


def vendors(w: World) -> None:
    w.acumatica.add_vendor("SUBCO", "SUBCO Framing", vendor_class="SUBCONTR")
    w.acumatica.add_vendor("MATCO", "Metro Materials", vendor_class="MATERIALS")


def vendor_reads(w: World) -> list[str]:
    return [
        req.path.rsplit("/", 1)[-1]
        for req, _status in w.acumatica.dispatched
        if req.method == "GET" and "/Vendor/" in req.path
    ]


def test_the_same_amount_falls_into_different_tiers_by_vendor_class(w: World):
    configure(w, tiers=TIERS)
    vendors(w)
    sub = w.acumatica.add_bill("SUBCO", 20000.00)["ReferenceNbr"]
    mat = w.acumatica.add_bill("MATCO", 20000.00)["ReferenceNbr"]
    sync = DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana)
    sync.process("Bill", sub)
    sync.process("Bill", mat)
    sub_gid, mat_gid = task_of(sub), task_of(mat)
    sub_levels, mat_levels = levels(w, sub_gid), levels(w, mat_gid)
    assert sorted(sub_levels) == [1, 2] and sub_levels[2]["assignee"] == CONTROLLER
    assert sorted(mat_levels) == [1]
    assert "[Approval level 1 of 1] PM" in mat_levels[1]["name"]
    created = AuditEntry.objects.filter(operation="controls.approval_levels").order_by("pk")
    assert [e.payload["vendor_class"] for e in created] == ["SUBCONTR", "MATERIALS"]
    assert "[vendor SUBCO: class SUBCONTR]" in created[0].error

    # The materials bill: one level, released once it and the task are approved.
    approve(w, mat_gid, PM)
    approve_level(w, mat_levels[1]["gid"], PM)
    assert releases(w) == [Decimal("20000")]
    # The subcontractor bill: the same amount waits for the controller too.
    approve(w, sub_gid, PM)
    approve_level(w, sub_levels[1]["gid"], PM)
    assert releases(w) == [Decimal("20000")]
    approve_level(w, sub_levels[2]["gid"], CONTROLLER)
    assert releases(w) == [Decimal("20000"), Decimal("20000")]
    assert w.acumatica.record("Bill", "Bill", sub)["Status"] == "Open"


def test_the_vendor_is_read_once_per_pass_and_once_per_release(w: World):
    configure(w, tiers=TIERS)
    vendors(w)
    refs = [w.acumatica.add_bill("SUBCO", amount)["ReferenceNbr"] for amount in (700.00, 800.00, 900.00)]
    w.acumatica.dispatched.clear()
    sync = DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana)
    for ref in refs:
        sync.process("Bill", ref)
    assert vendor_reads(w) == ["SUBCO"]  # three bills of one vendor in one pass: one read
    assert all(sorted(levels(w, task_of(ref))) == [1, 2] for ref in refs)
    gid = task_of(refs[0])
    subs = levels(w, gid)
    approve(w, gid, PM)
    approve_level(w, subs[1]["gid"], PM)
    w.acumatica.dispatched.clear()
    approve_level(w, subs[2]["gid"], CONTROLLER)
    assert releases(w) == [Decimal("700")]
    assert vendor_reads(w) == ["SUBCO"]  # the release attempt read it once


def test_no_vendor_read_when_no_tier_names_a_vendor_class(w: World):
    from tests.flows.controls.test_controls_sandbox import TIERS as AMOUNT_ONLY

    configure(w, tiers=AMOUNT_ONLY)
    vendors(w)
    ref = w.acumatica.add_bill("SUBCO", 700.00)["ReferenceNbr"]
    w.acumatica.dispatched.clear()
    DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process("Bill", ref)
    assert sorted(levels(w, task_of(ref))) == [1] and vendor_reads(w) == []


def test_the_dry_run_plan_shows_the_vendor_class_in_the_tier_line(w: World, capsys):
    from django.core.management import call_command

    configure(w, tiers=TIERS)
    vendors(w)
    w.acumatica.add_bill("SUBCO", 62000.00)
    w.acumatica.add_bill("MATCO", 62000.00)
    tasks_before = len(w.asana.tasks)
    capsys.readouterr()
    call_command("connector", "sync", "--tenant", "ridgeline", "--flow", "AP bills", "--dry-run")
    out = capsys.readouterr().out
    assert (
        "tier subcontract (> 0.00, no upper bound, vendor class SUBCONTR): PM + Controller "
        "[vendor SUBCO: class SUBCONTR]"
    ) in out
    assert "tier general (> 0.00, no upper bound): PM [vendor MATCO: class MATERIALS]" in out
    assert len(w.asana.tasks) == tasks_before
