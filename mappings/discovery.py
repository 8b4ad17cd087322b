"""Discover Asana fields: pick the project's custom fields by name, store them by GID.

The operator sees the project's fields by name and type for each ERP source path; what is stored
is the field's GID (name, type and precision cached for display only). A field whose type cannot
hold the source value is refused with the reason, as are formula and read-only fields.

Source paths and what they hold, per document type (reference/acumatica.md §3.1, §3.2 — mind
Bill.Vendor vs PurchaseOrder.VendorID and Bill.BranchID vs PurchaseOrder.Branch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from integrations.models import Flow

from .models import FieldMapping

SOURCE_FIELDS: dict[str, dict[str, str]] = {
    Flow.Kind.ACUMATICA_BILLS: {
        "Amount": "number",
        "Balance": "number",
        "TaxTotal": "number",
        "Date": "date",
        "DueDate": "date",
        "Vendor": "text",
        "VendorRef": "text",
        "ReferenceNbr": "text",
        "Type": "choice",
        "Status": "choice",
        "Description": "text",
        "BranchID": "text",
        "CurrencyID": "text",
        "Terms": "text",
        "PostPeriod": "text",
        "Project": "text",
    },
    Flow.Kind.ACUMATICA_PURCHASE_ORDERS: {
        "OrderTotal": "number",
        "LineTotal": "number",
        "TaxTotal": "number",
        "Date": "date",
        "PromisedOn": "date",
        "VendorID": "text",
        "VendorRef": "text",
        "OrderNbr": "text",
        "Type": "choice",
        "Status": "choice",
        "Description": "text",
        "Branch": "text",
        "CurrencyID": "text",
        "Owner": "person",
        "Project": "text",
    },
}
# Which Asana field types can hold which kind of source value.
COMPATIBLE: dict[str, tuple[str, ...]] = {
    "number": ("number", "text"),
    "date": ("date", "text"),
    "text": ("text", "enum"),
    "choice": ("enum", "multi_enum", "text"),
    "person": ("people", "text"),
}


def source_fields(flow: Flow) -> dict[str, str]:
    return SOURCE_FIELDS.get(flow.kind, {})


def refusal(source_path: str, source_type: str, spec: Any) -> str | None:
    """Why `spec` cannot take values of `source_path`, or None when it can."""
    if spec.is_formula_field or spec.is_value_read_only:
        return f"{spec.name!r} is a formula or read-only field: the connector cannot write it"
    allowed = COMPATIBLE.get(source_type, ("text",))
    if spec.type not in allowed:
        return (
            f"{source_path} holds a {source_type}; {spec.name!r} is a {spec.type} field "
            f"(it needs one of: {', '.join(allowed)})"
        )
    return None


def choices(specs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(GID, "Name (type)") for a select list, by name."""
    return sorted(((gid, f"{s.name} ({s.type})") for gid, s in specs.items()), key=lambda c: c[1].lower())


def apply_selection(
    flow: Flow, selection: Mapping[str, str], specs: Mapping[str, Any]
) -> tuple[list[str], dict[str, str]]:
    """Store {source path: field GID} as FieldMappings; returns (saved labels, {path: refusal})."""
    known = source_fields(flow)
    saved: list[str] = []
    refused: dict[str, str] = {}
    with transaction.atomic():
        for path, gid in selection.items():
            if not gid:
                continue
            spec = specs.get(gid)
            if spec is None:
                refused[path] = f"field {gid} is not on project {flow.asana_project_gid}"
                continue
            why = refusal(path, known.get(path, "text"), spec)
            if why:
                refused[path] = why
                continue
            FieldMapping.objects.filter(flow=flow, source_path=path, direction="to_asana").exclude(
                asana_field_gid=gid
            ).delete()
            FieldMapping.objects.update_or_create(
                flow=flow,
                asana_field_gid=gid,
                direction=FieldMapping.Direction.TO_ASANA,
                defaults={
                    "source_path": path,
                    "cached_name": spec.name,
                    "cached_type": spec.type,
                    "precision": spec.precision if spec.type == "number" else None,
                    "status": FieldMapping.Status.OK,
                    "status_reason": "",
                },
            )
            saved.append(f"{path} → {spec.name} ({gid})")
    return saved, refused
