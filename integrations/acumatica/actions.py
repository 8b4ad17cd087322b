"""Which approve/release actions this tenant's Acumatica offers: discovered, not guessed.

`Bill/Approve` is documented only on Default 25.200.001 and `PurchaseOrder/Approve` not at all; both
are workflow actions called by name, and a tenant's workflow decides whether they exist
(reference/acumatica.md §5.4: "check `_workflowActions`"). So `connector check` reads
`GET <endpoint>/<Entity>/$adHocSchema` (§1.1, §5.1) for Bill and PurchaseOrder, stores the action
names on the connection (`workflow_actions`), and the approvals flow asks `offered()` before it
invokes one: an action the tenant does not offer is refused with that reason instead of a 404.

Which status an action applies to (§5.3, §5.4; AIR-UG AP_30_10_00, PO_30_10_00): Approve only to
`Pending Approval`; ReleaseBill to `Balanced` (or `Under Reclassification`). A purchase order in
`Pending Printing` or `Pending Email` is already approved and waits for printing or e-mailing: it is
never "approved" again.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from integrations.base import errors

ENTITIES = ("Bill", "PurchaseOrder")
# The actions the connector may invoke, per entity (what a check line reports).
OF_INTEREST = {
    "Bill": ("ReleaseBill", "Approve", "Reject", "RemoveHold"),
    "PurchaseOrder": ("Approve", "Reject", "RemoveHold"),
}
APPLIES_TO = {"Approve": frozenset({"Pending Approval"}), "Reject": frozenset({"Pending Approval"})}


def read_actions(client: Any, entity: str) -> list[str]:
    """The names in `$adHocSchema` `_workflowActions` for `entity` (contract and workflow actions)."""
    with client.session_scope():
        data = client.json(client.request("GET", f"/{entity}/$adHocSchema")) or {}
    if not isinstance(data, dict) or not isinstance(data.get("_workflowActions"), list):
        raise errors.UnexpectedResponse(
            f"{entity}/$adHocSchema has no _workflowActions list", system="acumatica"
        )
    return sorted(
        {str(a.get("name")) for a in data["_workflowActions"] if isinstance(a, dict) and a.get("name")}
    )


def discover(client: Any, connection: Any) -> dict[str, Any]:
    """Read both entities' actions and store them on the connection; returns what was stored."""
    found: dict[str, Any] = {entity: read_actions(client, entity) for entity in ENTITIES}
    found["read_at"] = timezone.now().isoformat()
    if connection.pk is not None:
        type(connection).objects.filter(pk=connection.pk).update(workflow_actions=found)
    connection.workflow_actions = found
    return found


def offered(connection: Any, entity: str, action: str) -> bool | None:
    """True/False from the last check; None when no check has read the schema yet."""
    known = (getattr(connection, "workflow_actions", None) or {}).get(entity)
    if not isinstance(known, list):
        return None
    return action in known


def require(connection: Any, entity: str, action: str) -> None:
    """Refuse an action the tenant's Acumatica does not offer (as read by `connector check`)."""
    if offered(connection, entity, action) is False:
        raise errors.Invalid(
            f"this tenant's Acumatica does not offer {entity}/{action} (its {entity}/$adHocSchema lists "
            f"no such action, read by `connector check`): enable the approval workflow in Acumatica or "
            "change the flow's action, then run `connector check` again",
            system="acumatica",
        )


def require_status(entity: str, number: str, action: str, status: Any) -> None:
    """Refuse an action whose status does not apply (only Pending Approval gets an Approve)."""
    applies = APPLIES_TO.get(action)
    if applies is not None and status not in applies:
        raise errors.Invalid(
            f"{entity} {number} is {status!r} in Acumatica: {action} applies only to a document that is "
            f"{' or '.join(sorted(applies))}, so it is not invoked"
            + (
                " (Pending Printing / Pending Email: already approved, waiting to be printed or e-mailed)"
                if status in ("Pending Printing", "Pending Email")
                else ""
            ),
            system="acumatica",
        )


def needed(connection: Any) -> dict[str, set[str]]:
    """The actions this tenant's configuration will invoke: ReleaseBill for bills flows, each PO flow's
    action, and Approve on both when the tenant uses approval maps."""
    from integrations.models import Flow

    need: dict[str, set[str]] = {"Bill": set(), "PurchaseOrder": set()}
    flows = Flow.objects.filter(
        tenant_id=connection.tenant_id,
        enabled=True,
        kind__in=(Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS),
    )
    for flow in flows:
        if flow.kind == Flow.Kind.ACUMATICA_BILLS:
            need["Bill"].add("ReleaseBill")
        else:
            need["PurchaseOrder"].add(str((flow.options or {}).get("po_action") or "Approve"))
    if getattr(connection, "uses_approval_maps", False):
        need["Bill"].add("Approve")
        need["PurchaseOrder"].add("Approve")
    return need
