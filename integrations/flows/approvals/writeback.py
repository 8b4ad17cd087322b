"""Asana → Acumatica: custom-field values people edit on the task, written back to the document.

Only FieldMappings with direction `to_erp` on the approvals flow take part, and each Acumatica field has
ONE source of truth: a path that is also mapped ERP → Asana (by the document flow) is refused, so the
two flows can never ping-pong a value. GL accounts, subaccounts, detail lines and the chart of accounts
are never written from Asana (ARCHITECTURE §2): such mappings are refused and marked broken.

Source paths: a top-level field (`Description`, `Hold`, `DueDate`, `VendorRef`) or a custom attribute
`custom/<View>/<Field>` (e.g. `custom/Document/UsrJobCode`), sent in the entity's `custom` block.
Transforms: `bool` (Yes/No/true/1 → True) for Hold-like fields; enum options go through ValueMapping
(option GID → ERP value) or, failing that, the option's name.

Nothing is written to a released (Open/Closed) document: Acumatica refuses edits there anyway.
The write is a PUT with If-Match (update only, safe to retry); only the changed fields are sent.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from audit.recorder import record_entry
from integrations.asana import fields as cf
from integrations.base import errors
from integrations.models import Flow, RecordLink
from mappings.models import FieldMapping, ValueMapping

GL_SEGMENT = re.compile(r"^(Details|\w*Account(ID|CD)?|\w*Sub(ID|CD|account)?)$", re.IGNORECASE)
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on", "hold", "on hold"})
RELEASED = frozenset({"Open", "Closed", "Completed"})


def refusal(mapping: FieldMapping, erp_to_asana_paths: set[str]) -> str | None:
    """Why this write-back mapping must not be applied (None: it may)."""
    path = mapping.source_path.strip()
    if any(GL_SEGMENT.match(segment) for segment in re.split(r"[/.]", path)):
        return f"{path}: GL accounts and the chart of accounts are never written from Asana"
    if path in erp_to_asana_paths:
        return f"{path}: already mapped Acumatica → Asana; one source of truth per field"
    if path in ("Type", "ReferenceNbr", "OrderNbr", "Status", "Amount", "OrderTotal", "Vendor", "VendorID"):
        return f"{path}: keys, status, amounts and vendors are not written from Asana"
    return None


def convert(mapping: FieldMapping, entry: dict[str, Any]) -> Any:
    """The ERP value for one task custom-field entry."""
    value = cf.decode_value(entry)
    if (
        value is not None
        and mapping.cached_type in (FieldMapping.FieldType.ENUM, "")
        and isinstance(value, str)
        and entry.get("enum_value")
    ):
        vm = ValueMapping.objects.filter(field_mapping=mapping, target_value=value).first()
        value = vm.source_value if vm else entry["enum_value"].get("name")
    if mapping.transform == "bool":
        return str(value).strip().lower() in TRUE_WORDS if value is not None else False
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _same(current: Any, desired: Any) -> bool:
    if isinstance(desired, bool) or isinstance(current, bool):
        return bool(current) == bool(desired)
    if isinstance(desired, (int, float, Decimal)) and current is not None:
        try:
            return Decimal(str(current)) == Decimal(str(desired))
        except ArithmeticError:
            return False
    if isinstance(desired, datetime) and isinstance(current, str):
        return current[:10] == desired.date().isoformat()
    if isinstance(desired, datetime) and isinstance(current, datetime):
        return current.date() == desired.date()
    return (current or "") == (desired or "")


def _current(document: Any, path: str) -> Any:
    if path.startswith("custom/"):
        _, view, name = path.split("/", 2)
        return (getattr(document, "custom", None) or {}).get(f"{view}.{name}")
    return document.get(path)


def apply_task_values(
    flow: Flow, link: RecordLink, task: dict[str, Any], *, clients, inbound_event=None
) -> str:
    """Write the task's mapped values to the document when they differ; returns what happened."""
    mappings = list(flow.field_mappings.filter(direction=FieldMapping.Direction.TO_ERP))
    if not mappings:
        return "no write-back mappings"
    to_asana = set(
        FieldMapping.objects.filter(
            flow__tenant=flow.tenant, direction=FieldMapping.Direction.TO_ASANA
        ).values_list("source_path", flat=True)
    )
    entries = {str(e["gid"]): e for e in task.get("custom_fields") or [] if e.get("gid")}
    usable = []
    for m in mappings:
        why = refusal(m, to_asana)
        if why:
            if m.status != FieldMapping.Status.BROKEN or m.status_reason != why:
                FieldMapping.objects.filter(pk=m.pk).update(
                    status=FieldMapping.Status.BROKEN, status_reason=why
                )
            continue
        if m.asana_field_gid in entries:
            usable.append(m)
    if not usable:
        return "no usable write-back mappings"
    is_bill = link.kind == RecordLink.Kind.BILL
    entity = "Bill" if is_bill else "PurchaseOrder"
    keys = {"Type": link.acumatica_type, ("ReferenceNbr" if is_bill else "OrderNbr"): link.acumatica_ref}
    acu = clients.acumatica
    document = acu.get(entity, (link.acumatica_type, link.acumatica_ref))
    if document.get("Status") in RELEASED:
        return f"document is {document.get('Status')}: nothing written back"
    fields: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    diff: dict[str, Any] = {}
    for m in usable:
        desired = convert(m, entries[m.asana_field_gid])
        current = _current(document, m.source_path)
        if desired is None or _same(current, desired):
            continue
        diff[m.source_path] = {"from": _plain(current), "to": _plain(desired)}
        if m.source_path.startswith("custom/"):
            _, view, name = m.source_path.split("/", 2)
            custom[f"{view}.{name}"] = desired
        else:
            fields[m.source_path] = desired
    if not diff:
        return "write-back unchanged"
    try:
        acu.put(entity, {**keys, **fields}, mode="update", custom=custom or None)
    except errors.PermanentError as exc:
        record_entry(
            tenant=flow.tenant,
            flow=flow,
            operation=f"{link.kind}.writeback",
            status="failed",
            record_key=f"{link.acumatica_type} {link.acumatica_ref}",
            field_diff=diff,
            error=str(exc),
            error_class=type(exc).__name__,
            inbound_event=inbound_event,
        )
        return f"write-back failed: {exc.message}"
    record_entry(
        tenant=flow.tenant,
        flow=flow,
        operation=f"{link.kind}.writeback",
        status="succeeded",
        record_key=f"{link.acumatica_type} {link.acumatica_ref}",
        field_diff=diff,
        payload={"fields": {k: _plain(v) for k, v in fields.items()}, "custom": _plain(custom)},
        inbound_event=inbound_event,
    )
    return f"wrote back {', '.join(sorted(diff))}"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
