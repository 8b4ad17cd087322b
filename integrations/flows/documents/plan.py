"""The pure decision for one Acumatica document: (source record, flow settings, link) → Plan.

No I/O and no ORM here, so every case is unit-tested and `connector sync --dry-run` prints exactly
what a real pass would do. The orchestrator (acumatica_documents.py) reads, locks and writes.

Actions:
    create      no task yet: one POST /tasks with every custom field
    update      a task exists and the mapped payload changed: PUT only the changed fields
    skip        nothing to write (unchanged payload hash, outside the status filter, already closed)
    quarantine  a mapped value cannot be written (no value mapping, disabled option, field removed
                from the project, type changed…): nothing is written, the reason is shown
    close       the document was deleted, voided or cancelled: the flow's choice (complete the task
                with a comment, move it to a section, or leave it)
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from integrations.asana import fields as cf
from integrations.asana.shapes import task_changes
from mappings.convert import ConversionError, MappingSpec, People, convert_record

NAME_LIMIT = 1024
NOTES_LIMIT = 65_000


@dataclass(frozen=True)
class DocumentType:
    """What differs between bills and purchase orders (reference/acumatica.md §3.1, §3.2, §8.8)."""

    flow_kind: str
    entity: str
    link_kind: str
    number_field: str  # Bill.ReferenceNbr / PurchaseOrder.OrderNbr; the other key is `Type` for both
    closed_statuses: frozenset[str]
    default_name: str
    # Generic-inquiry column names a push notification may carry for the keys (§7.3, §7.5).
    push_type_columns: tuple[str, ...]
    push_number_columns: tuple[str, ...]


BILL = DocumentType(
    flow_kind="acumatica_bills",
    entity="Bill",
    link_kind="bill",
    number_field="ReferenceNbr",
    closed_statuses=frozenset({"Voided"}),
    default_name="{Type} {ReferenceNbr} · {Vendor} · {Amount}",
    push_type_columns=("DocType", "Type"),
    push_number_columns=("RefNbr", "ReferenceNbr"),
)
PURCHASE_ORDER = DocumentType(
    flow_kind="acumatica_purchase_orders",
    entity="PurchaseOrder",
    link_kind="purchase_order",
    number_field="OrderNbr",
    closed_statuses=frozenset({"Canceled", "Cancelled"}),
    default_name="PO {OrderNbr} · {VendorID} · {OrderTotal}",
    push_type_columns=("OrderType", "Type"),
    push_number_columns=("OrderNbr",),
)
DOCUMENT_TYPES = {BILL.flow_kind: BILL, PURCHASE_ORDER.flow_kind: PURCHASE_ORDER}
CLOSE_CHOICES = ("complete", "section", "leave")


@dataclass(frozen=True)
class FlowSettings:
    doc: DocumentType
    project_gid: str
    section_gid: str = ""
    erp_reference_field_gid: str = ""
    name_template: str = ""
    notes_template: str = ""
    mappings: tuple[MappingSpec, ...] = ()
    people: People = field(default_factory=People)
    status_filter: tuple[str, ...] = ()
    on_closed: str = "complete"  # complete | section | leave
    closed_section_gid: str = ""
    external_prefix: str = ""  # set under OAuth: the task's external.gid = prefix + natural key


@dataclass(frozen=True)
class LinkView:
    """What the plan needs from a RecordLink (an empty one when the document is not linked yet)."""

    state: str = ""
    task_gid: str = ""
    payload_hash: str = ""
    last_payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    action: str
    key: str
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    diff: dict[str, Any] = field(default_factory=dict)
    payload_hash: str = ""
    close_how: str = ""
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = f"{self.action:<10} {self.key}"
        if self.diff:
            text += "  " + ", ".join(f"{k}: {v[0]!r} → {v[1]!r}" for k, v in self.diff.items())
        if self.reason:
            text += f"  ({self.reason})"
        return text


def natural_key(doc: DocumentType, record: Mapping[str, Any]) -> str:
    """`Bill/000123`, `Credit Adj./000124`, `Normal/PO000001`: unambiguous across document types."""
    return f"{record.get('Type')}/{record.get(doc.number_field)}"


def payload_hash(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


class _Values(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, record: Mapping[str, Any]) -> str:
    """`{Field}` placeholders from the record; unknown or empty fields render as "—"."""
    values = _Values()
    for _text, name, _spec, _conv in string.Formatter().parse(template):
        if name:
            value = record.get(name)
            if isinstance(value, (Decimal, float)) and not isinstance(value, bool):
                number = Decimal(str(value))
                # Money reads with at least two decimals; more precision is kept as sent.
                value = format(
                    number.quantize(Decimal("0.01")) if number.as_tuple().exponent > -2 else number, "f"
                )
            elif isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and "T" in value:
                value = value[:10]  # an Acumatica date-time: show the date
            values[name] = "—" if value in (None, "") else value
    try:
        return template.format_map(values)
    except (ValueError, IndexError, AttributeError, KeyError):
        return template


def _drift_problems(
    settings: FlowSettings, values: dict[str, Any], live_specs: Mapping[str, cf.FieldSpec] | None
) -> list[str]:
    """A removed field or a changed type blocks only the records that have a value for that field."""
    problems = []
    if live_specs is None:
        return problems
    for mapping in settings.mappings:
        if values.get(mapping.field_gid) is None:
            continue
        live = live_specs.get(mapping.field_gid)
        label = f"{mapping.source_path} → {mapping.cached_name or mapping.field_gid!r} ({mapping.field_gid})"
        if live is None:
            problems.append(f"{label}: the custom field is no longer on the project")
        elif mapping.cached_type and live.type != mapping.cached_type:
            problems.append(f"{label}: the field's type changed from {mapping.cached_type} to {live.type}")
    return problems


def desired_task(
    record: Mapping[str, Any],
    settings: FlowSettings,
    live_specs: Mapping[str, cf.FieldSpec] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The task payload the document should have, and the problems that prevent writing it."""
    key = natural_key(settings.doc, record)
    values, errors = convert_record(
        record, list(settings.mappings), live_specs=live_specs, people=settings.people
    )
    problems = [str(e) for e in errors] + _drift_problems(settings, values, live_specs)
    # Broken fields with no value are left out entirely (a removed field cannot take a value).
    values = {gid: v for gid, v in values.items() if v is not None or live_specs is None or gid in live_specs}
    if settings.erp_reference_field_gid:
        # The natural key wins over any mapping that targets the same field: reconciliation reads it.
        values[settings.erp_reference_field_gid] = key
    name = render(settings.name_template or settings.doc.default_name, record)
    payload: dict[str, Any] = {"name": cf.truncate_text(name, NAME_LIMIT), "custom_fields": values}
    if settings.notes_template:
        payload["notes"] = cf.truncate_text(render(settings.notes_template, record), NOTES_LIMIT)
    if settings.external_prefix:
        payload["external"] = {"gid": settings.external_prefix + key}
    return payload, problems


def _diff(changes: Mapping[str, Any], last: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "custom_fields":
            known = last.get("custom_fields") or {}
            for gid, new in value.items():
                out[f"custom_fields.{gid}"] = [known.get(gid), new]
        else:
            out[name] = [last.get(name), value]
    return out


def plan_document(
    record: Mapping[str, Any] | None,
    settings: FlowSettings,
    link: LinkView,
    live_specs: Mapping[str, cf.FieldSpec] | None = None,
    *,
    key: str | None = None,
) -> Plan:
    """Decide what to do with one document. `record` None means it no longer exists in Acumatica."""
    key = key or natural_key(settings.doc, record or {})
    status = (record or {}).get("Status")
    if record is None or status in settings.doc.closed_statuses:
        why = "deleted in Acumatica" if record is None else f"{status.lower()} in Acumatica"
        if not link.task_gid:
            return Plan("skip", key, reason=f"{why} before a task was created")
        if link.state in ("closed", "deleted"):
            return Plan("skip", key, reason=f"{why}; the task was already closed")
        return Plan("close", key, reason=why, close_how=settings.on_closed)
    if not link.task_gid and settings.status_filter and status not in settings.status_filter:
        return Plan("skip", key, reason=f"status {status!r} is outside the flow's filter")
    payload, problems = desired_task(record, settings, live_specs)
    digest = payload_hash(payload)
    if problems:
        return Plan(
            "quarantine",
            key,
            reason="; ".join(problems),
            payload=payload,
            problems=problems,
            payload_hash=digest,
        )
    if not link.task_gid:
        return Plan("create", key, payload=payload, payload_hash=digest)
    if digest == link.payload_hash:
        return Plan("skip", key, reason="unchanged", payload=payload, payload_hash=digest)
    changes = task_changes(payload, link.last_payload or {})
    if not changes:
        return Plan("skip", key, reason="unchanged", payload=payload, payload_hash=digest)
    return Plan(
        "update",
        key,
        payload=payload,
        changes=changes,
        diff=_diff(changes, link.last_payload or {}),
        payload_hash=digest,
    )


__all__ = [
    "BILL",
    "CLOSE_CHOICES",
    "DOCUMENT_TYPES",
    "PURCHASE_ORDER",
    "ConversionError",
    "DocumentType",
    "FlowSettings",
    "LinkView",
    "Plan",
    "desired_task",
    "natural_key",
    "payload_hash",
    "plan_document",
    "render",
]


def parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    from integrations.acumatica.values import parse_datetime

    try:
        return parse_datetime(str(value))
    except ValueError:
        return None


def header_snapshot(record: Any) -> dict[str, Any]:
    """The header as read (Details summarised: a bill may carry thousands of lines)."""
    if record is None:
        return {"deleted": True}
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            out[key] = f"{len(value)} line(s)"
        elif isinstance(value, dict):
            continue
        else:
            out[key] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return out
