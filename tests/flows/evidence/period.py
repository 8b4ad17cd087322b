"""An evidence period built through the flows against the sandboxes: four bills, each a case an auditor
asks about. Used in-process (tests/flows/evidence, events delivered to the webhook view) and served (the
browser suite and the screenshots, where `deliver` runs the approvals flow for the changed task)."""

from __future__ import annotations

from collections.abc import Callable

from audit.models import AuditEntry
from integrations.flows import replay
from integrations.flows.documents.sync import DocumentSync
from integrations.models import AcumaticaConnection, RecordLink
from mappings.models import UserMapping
from tests.flows.inbound.harness import DEMO, World


def build_period(w: World, *, deliver: Callable[[str], object]) -> World:
    """`deliver(task_gid)` makes the connector act on what changed on the task since the last call."""
    UserMapping.objects.get_or_create(
        tenant=w.tenant,
        email="alice@ridgeline.test",
        defaults={"display_name": "Alice Approver", "asana_user_gid": DEMO["users"]["alice"]},
    )

    def approve(gid: str) -> None:
        w.clock.now += 1
        w.approve(gid)
        deliver(gid)

    cases = {}
    # 1. approved and released
    bill = w.acumatica.add_bill("ABCCONCRETE", 1200.50, vendor_ref="INV-1")
    gid, cases["released"] = w.bill_task(bill)
    approve(gid)
    # 2. approved; the amount changes in Acumatica before the release; the documents flow resets the
    #    approval; approved again and released at the new amount
    bill = w.acumatica.add_bill("STEELWORKS", 500.00, vendor_ref="SW-7", status="Pending Approval")
    gid, cases["changed"] = w.bill_task(bill)
    approve(gid)  # fails: Pending Approval without approval maps (the approval stands)
    w.acumatica.update_record("Bill", ("Bill", bill["ReferenceNbr"]), Amount=650.00, Status="Balanced")
    DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process(
        "Bill", bill["ReferenceNbr"]
    )
    assert AuditEntry.objects.filter(
        operation="changed_after_approval", record_link=cases["changed"]
    ).exists()
    deliver(gid)
    approve(gid)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    # 3. refused: approved at 1000.00, changed to 1900.00 in Acumatica before the connector acts
    bill = w.acumatica.add_bill("RIVERLUMBER", 1000.00, vendor_ref="RL-3")
    gid, cases["refused"] = w.bill_task(bill)
    w.clock.now += 1
    w.approve(gid)
    w.acumatica.update_record("Bill", ("Bill", bill["ReferenceNbr"]), Amount=1900.00)
    deliver(gid)
    assert (
        AuditEntry.objects.get(record_link=cases["refused"], operation="bill.release").status == "quarantined"
    )
    # 4. failed (Pending Approval, no approval maps), then the tenant turns approval maps on and an
    #    operator replays the release entry
    bill = w.acumatica.add_bill("SUMMITELEC", 800.00, status="Pending Approval")
    gid, cases["replayed"] = w.bill_task(bill)
    approve(gid)
    failed = AuditEntry.objects.get(record_link=cases["replayed"], operation="bill.release")
    assert failed.status == "failed"
    AcumaticaConnection.objects.filter(tenant=w.tenant).update(uses_approval_maps=True)
    link = RecordLink.objects.get(pk=cases["replayed"].pk)
    assert replay.enqueue([(link, failed)], actor="olivia") is not None  # django-q2 sync mode: runs now
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    w.cases = {k: RecordLink.objects.get(pk=v.pk) for k, v in cases.items()}
    return w
