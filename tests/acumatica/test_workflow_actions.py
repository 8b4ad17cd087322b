"""Actions discovered, not guessed: `connector check` reads `$adHocSchema` `_workflowActions` for Bill
and PurchaseOrder (reference §5.4), stores them, and tells a tenant whose Acumatica lacks Approve."""

from __future__ import annotations

import pytest

from integrations.acumatica import actions
from integrations.acumatica.check import check_acumatica
from integrations.base import errors
from integrations.models import AcumaticaConnection


def line(results, what: str):
    return next(r for r in results if r.what == what)


def test_check_reports_and_stores_the_actions_the_tenant_offers(connection, mounted, make_client):
    results = check_acumatica(connection, client=make_client(connection))
    bill, po = line(results, "Bill actions"), line(results, "PurchaseOrder actions")
    assert bill.ok and "offers ReleaseBill, Approve, Reject, RemoveHold" in bill.detail
    assert po.ok and "offers Approve, Reject, RemoveHold" in po.detail
    stored = AcumaticaConnection.objects.get(pk=connection.pk).workflow_actions
    assert {"ReleaseBill", "Approve"} <= set(stored["Bill"]) and "Approve" in stored["PurchaseOrder"]
    assert stored["read_at"]
    schema_reads = [p for _m, p, _s in mounted.request_log if p.endswith("/$adHocSchema")]
    assert [p.rsplit("/", 2)[-2] for p in schema_reads] == ["Bill", "PurchaseOrder"]


def test_a_tenant_without_approve_is_told_at_check_time(connection, mounted, make_client):
    AcumaticaConnection.objects.filter(pk=connection.pk).update(uses_approval_maps=True)
    connection.refresh_from_db()
    mounted.withdraw_action("Bill", "Approve")
    mounted.withdraw_action("PurchaseOrder", "Approve")
    results = check_acumatica(connection, client=make_client(connection))
    bill, po = line(results, "Bill actions"), line(results, "PurchaseOrder actions")
    assert not bill.ok and not po.ok
    assert "not offered: Approve" in bill.detail and "cannot approve a Bill through the API" in bill.detail
    assert "NEEDED by this tenant's configuration: Approve" in po.detail
    row = AcumaticaConnection.objects.get(pk=connection.pk)
    assert "Approve" not in row.workflow_actions["Bill"] and row.last_check_ok is not True
    with pytest.raises(errors.Invalid, match="does not offer Bill/Approve"):
        actions.require(row, "Bill", "Approve")


def test_without_approval_maps_a_missing_approve_is_reported_but_not_a_failure(
    connection, mounted, make_client
):
    mounted.withdraw_action("PurchaseOrder", "Approve")
    po = line(check_acumatica(connection, client=make_client(connection)), "PurchaseOrder actions")
    assert po.ok and "not offered: Approve" in po.detail


def test_a_withdrawn_action_is_404_in_the_sandbox(connection, mounted, make_client):
    mounted.withdraw_action("PurchaseOrder", "Approve")
    client = make_client(connection)
    with pytest.raises(errors.NotFound):
        client.invoke_action("PurchaseOrder", "Approve", {"Type": "Normal", "OrderNbr": "PO000001"})


@pytest.mark.parametrize("status", ["Pending Printing", "Pending Email", "Balanced", "On Hold"])
def test_approve_applies_only_to_pending_approval(status):
    with pytest.raises(errors.Invalid, match="applies only to a document that is Pending Approval"):
        actions.require_status("PurchaseOrder", "PO000007", "Approve", status)
    actions.require_status("PurchaseOrder", "PO000007", "Approve", "Pending Approval")
    actions.require_status("PurchaseOrder", "PO000007", "SomeOtherAction", status)
