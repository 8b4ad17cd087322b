"""Approving a purchase order's task runs the flow's configured Acumatica action behind the same guards
as bills: pending approval (with and without approval maps), on hold, already open, changed after
approval. Each asserts the purchase order's state in the sandbox and the calls made."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from integrations.flows.inbound import watchdog
from integrations.models import AcumaticaConnection, Flow, RecordLink
from tests.flows.inbound.harness import DEMO, OPT, F, World, mapping, world  # noqa: F401


@pytest.fixture
def po_world(world: World):  # noqa: F811
    w = world
    pos = Flow.objects.create(
        tenant=w.tenant,
        name="Purchase orders",
        kind=Flow.Kind.ACUMATICA_PURCHASE_ORDERS,
        asana_project_gid=DEMO["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
    )
    mapping(pos, "OrderTotal", F["amount"], "number", precision=2)
    mapping(pos, "VendorID", F["vendor"], "text")
    mapping(pos, "OrderNbr", F["erp_reference"], "text")
    w.pos_flow = pos
    watchdog.ensure_webhooks(w.tenant, w.clients.asana)
    w.asana.deliver_pending_events()
    return w


def po_task(w: World, po: dict) -> tuple[str, RecordLink]:
    return w.bill_task(po, kind=RecordLink.Kind.PURCHASE_ORDER, flow=w.pos_flow)


def approve(w: World, gid: str) -> None:
    w.clock.now += 1
    w.approve(gid, how="enum")
    w.asana.deliver_pending_events()


def po_actions(w: World, action: str = "Approve") -> int:
    return sum(
        1 for m, p, _ in w.acumatica.request_log if m == "POST" and p.endswith(f"/PurchaseOrder/{action}")
    )


def use_approval_maps(w: World, on: bool = True) -> None:
    AcumaticaConnection.objects.filter(tenant=w.tenant).update(uses_approval_maps=on)


def test_pending_po_is_approved_once_under_approval_maps(po_world: World):
    w = po_world
    use_approval_maps(w)
    po = w.acumatica.add_purchase_order("ABCCONCRETE", 7400.00, status="Pending Approval")
    gid, link = po_task(w, po)
    approve(w, gid)
    assert w.acumatica.record("PurchaseOrder", "Normal", po["OrderNbr"])["Status"] == "Open"
    assert po_actions(w) == 1
    assert AuditEntry.objects.get(operation="purchase_order.release", record_link=link).status == "succeeded"
    # A repeated approval finds it Open: nothing more is sent.
    w.asana.ui_update_task(
        gid, DEMO["users"]["carol"], custom_fields={F["approval_status"]: OPT["approval_status"]["Pending"]}
    )
    approve(w, gid)
    assert po_actions(w) == 1


def test_pending_po_without_approval_maps_is_refused_with_a_reason(po_world: World):
    w = po_world
    po = w.acumatica.add_purchase_order("ABCCONCRETE", 500.00, status="Pending Approval")
    gid, link = po_task(w, po)
    approve(w, gid)
    assert w.acumatica.record("PurchaseOrder", "Normal", po["OrderNbr"])["Status"] == "Pending Approval"
    assert po_actions(w) == 0
    entry = AuditEntry.objects.filter(record_link=link).latest("id")
    assert entry.status == "failed" and "approval maps" in entry.error


def test_po_on_hold_is_released_from_hold(po_world: World):
    w = po_world
    po = w.acumatica.add_purchase_order("STEELWORKS", 51000.00, status="On Hold")
    gid, _ = po_task(w, po)
    approve(w, gid)
    assert w.acumatica.record("PurchaseOrder", "Normal", po["OrderNbr"])["Status"] == "Open"
    assert po_actions(w) == 0  # taking it off hold opened it; no approval action was needed


def test_po_total_changed_after_approval_is_refused(po_world: World):
    w = po_world
    use_approval_maps(w)
    po = w.acumatica.add_purchase_order("ABCCONCRETE", 7400.00, status="Pending Approval")
    gid, link = po_task(w, po)
    w.acumatica.update_record("PurchaseOrder", ("Normal", po["OrderNbr"]), OrderTotal=9900.00)
    approve(w, gid)
    assert w.acumatica.record("PurchaseOrder", "Normal", po["OrderNbr"])["Status"] == "Pending Approval"
    assert po_actions(w) == 0
    link.refresh_from_db()
    assert "OrderTotal" in link.state_reason


@pytest.mark.parametrize("status", ["Pending Printing", "Pending Email"])
def test_approve_is_not_invoked_on_a_po_waiting_to_be_printed_or_emailed(po_world: World, status: str):
    """Issue 19: PurchaseOrder/Approve applies only to Pending Approval (reference §5.4)."""
    w = po_world
    use_approval_maps(w)
    po = w.acumatica.add_purchase_order("ABCCONCRETE", 640.00, status=status)
    gid, link = po_task(w, po)
    approve(w, gid)
    assert w.acumatica.record("PurchaseOrder", "Normal", po["OrderNbr"])["Status"] == status
    assert po_actions(w) == 0
    entry = AuditEntry.objects.filter(record_link=link).latest("id")
    assert entry.status == "failed" and "applies only to a document that is Pending Approval" in entry.error
    assert status in entry.error


def test_approve_the_tenant_does_not_offer_is_refused_with_the_reason(po_world: World):
    """`connector check` stored the PurchaseOrder actions without Approve: no 404 guess, a reason."""
    w = po_world
    use_approval_maps(w)
    AcumaticaConnection.objects.filter(tenant=w.tenant).update(
        workflow_actions={"Bill": ["ReleaseBill"], "PurchaseOrder": ["Hold", "RemoveHold"]}
    )
    po = w.acumatica.add_purchase_order("ABCCONCRETE", 7400.00, status="Pending Approval")
    gid, link = po_task(w, po)
    approve(w, gid)
    assert w.acumatica.record("PurchaseOrder", "Normal", po["OrderNbr"])["Status"] == "Pending Approval"
    assert po_actions(w) == 0
    entry = AuditEntry.objects.filter(record_link=link).latest("id")
    assert entry.status == "failed" and "does not offer PurchaseOrder/Approve" in entry.error
