"""Sage 100 purchase-order values onto the purchase request's Asana task: shared by the purchase-request
flow (the PO it created) and the PO status flow (the PO as it changes, or disappears, in Sage).

    writeback_record(po)   the Sage values a to_asana FieldMapping can name
    write_status(...)      mapped values → the task's custom fields, only those that changed
    write_back(...)        PO number, vendor, status → the task; the first time, a comment saying what
                           was created
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from audit.recorder import record_entry
from integrations.models import Flow, RecordLink
from mappings.convert import MappingSpec, convert_record
from mappings.models import FieldMapping

log = logging.getLogger(__name__)

REFUSED = "REFUSED"  # OrderStatus value written back (through a ValueMapping) when a request is refused
DELETED = "DELETED"  # … and when the PO disappeared from Sage


def writeback_record(po: Mapping[str, Any], *, status: str | None = None) -> dict[str, Any]:
    """Sage values a to_asana FieldMapping can name: PurchaseOrderNo, VendorName, OrderStatus, OrderTotal."""
    vendor = po.get("vendor") or {}
    record = {
        "PurchaseOrderNo": po.get("po_number"),
        "VendorName": vendor.get("name"),
        "VendorNo": f"{vendor.get('division', '')}-{vendor.get('vendor_no', '')}".strip("-"),
        "OrderStatus": status or po.get("status"),
        "OrderTotal": (po.get("totals") or {}).get("amount"),
    }
    return {k: v for k, v in record.items() if v not in (None, "")}  # unknown values never clear a field


def writeback_mappings(flow: Flow) -> list[MappingSpec]:
    rows = FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ASANA)
    return [MappingSpec.from_model(m) for m in rows.prefetch_related("value_mappings")]


def write_status(flow: Flow, link: RecordLink, record: dict[str, Any], *, asana: Any) -> dict[str, Any]:
    """Mapped Sage values → the task's custom fields (a value without a mapping is skipped)."""
    mappings = [m for m in writeback_mappings(flow) if m.source_path in record]
    values, problems = convert_record(record, mappings)
    for problem in problems:
        log.info(
            "purchase request %s: %s not written: %s",
            link.asana_task_gid,
            problem.mapping.source_path,
            problem,
        )
    last = (link.last_payload or {}).get("custom_fields") or {}
    changed = {gid: v for gid, v in values.items() if last.get(gid) != v}
    if changed:
        asana.update_task(link.asana_task_gid, {"custom_fields": changed})
        merged = {**(link.last_payload or {}), "custom_fields": {**last, **changed}}
        RecordLink.objects.filter(pk=link.pk).update(last_payload=merged)
        link.last_payload = merged
    return changed


def write_back(
    flow: Flow,
    link: RecordLink,
    po: dict[str, Any],
    *,
    asana: Any,
    announce: bool = False,
    status: str | None = None,
) -> dict[str, Any]:
    """PO number, vendor name, status → the task; the first time, a comment saying what was created."""
    changed = write_status(flow, link, writeback_record(po, status=status), asana=asana)
    if announce and not (link.last_payload or {}).get("announced"):
        vendor = (po.get("vendor") or {}).get("name") or ""
        total = (po.get("totals") or {}).get("amount")
        text = f"Sage 100 purchase order {po['po_number']} created for {vendor}: total {total}."
        notes = (link.approved_snapshot or {}).get("notes") or []
        notes += [f"Sage: {w.get('message')} ({w.get('field')})" for w in po.get("warnings") or []]
        if notes:
            text += "\n" + "\n".join(f"• {n}" for n in notes)
        asana.add_comment(link.asana_task_gid, text)
        merged = {**(link.last_payload or {}), "announced": True}
        RecordLink.objects.filter(pk=link.pk).update(last_payload=merged)
        link.last_payload = merged
    record_entry(
        tenant=flow.tenant,
        flow=flow,
        record_link=link,
        operation="purchase_request.writeback",
        status="succeeded" if changed else "unchanged",
        record_key=link.asana_task_gid,
        field_diff=changed,
    )
    return changed
