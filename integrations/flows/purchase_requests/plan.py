"""Asana purchase request → Sage 100 PO request: the pure part (no I/O, no ORM).

`build_request(task, subtasks, settings)` reads the mapped custom fields of an approved task and
returns a `PurchaseRequest` plus the problems that make it impossible (each one sentence an operator
or requester can act on) and notes (what was adjusted, e.g. a description cut to Sage's 30
characters). `po_payload` turns a request into the agent's create body (docs/sage100-agent.md §2.1).

Mappings (FieldMapping rows of the flow, direction to_erp; `source_path` names the Sage field):

    VendorNo     text/enum  the vendor as the requester wrote it → ValueMapping(kind=vendor) → `DD-VVVVVVV`
    CostCode     enum/text  option GID (or name) → ValueMapping(kind=cost_code) →
                            `6000-00-00`, or `5000-01-00|J000123|100-200|S` (account|job|cost code|type)
    Quantity     number     default 1
    UnitCost     number     or, without it, Amount (the line total) divided by Quantity
    Amount       number
    Description  text       default: the task (or subtask) name
    RequiredDate date
    ItemCode     text       default: settings.item_code (a `/` miscellaneous item, ref §2.3)

Lines: one per subtask when the task has subtasks (each subtask's own fields, falling back to the
parent's cost code), else one line from the task. Field lengths (ref §2.2, §2.3): descriptive text is
cut with a note and kept whole in a comment line; codes are refused, because a cut code names
another record.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.asana import fields as cf

DESCRIPTION_LIMIT = 30  # ItemCodeDesc (ref §2.3)
CODE_LIMITS = {"VendorNo": 7, "APDivisionNo": 2, "JobNo": 7, "CostCode": 9, "CostType": 1, "ItemCode": 30}
MAX_DECIMALS = 6  # UnitCost is (15,6)


@dataclass(frozen=True)
class RequestSettings:
    """The flow's mappings as plain data (built from the ORM by the orchestration module)."""

    fields: Mapping[str, str]  # Sage source path → Asana field GID (to_erp)
    vendors: Mapping[str, str]  # lower-cased vendor text → "DD-VVVVVVV" or "VVVVVVV"
    cost_codes: Mapping[str, str]  # option GID or lower-cased name/text → GL target
    option_names: Mapping[str, str] = field(default_factory=dict)  # option GID → name (messages)
    default_division: str = "00"
    item_code: str = "/MISC"
    gl_account_mask: str = "####-##-##"


@dataclass(frozen=True)
class RequestLine:
    description: str
    quantity: Decimal
    unit_cost: Decimal
    gl_account: str
    job_no: str = ""
    cost_code: str = ""
    cost_type: str = ""
    item_code: str = "/MISC"
    full_description: str = ""  # set when the description had to be cut


@dataclass(frozen=True)
class PurchaseRequest:
    task_gid: str
    vendor_text: str
    division: str
    vendor_no: str
    lines: tuple[RequestLine, ...]
    required_date: date | None = None

    @property
    def vendor_id(self) -> str:
        return f"{self.division}-{self.vendor_no}"

    @property
    def total(self) -> Decimal:
        return sum((ln.quantity * ln.unit_cost for ln in self.lines), Decimal("0")).quantize(Decimal("0.01"))


def _values(task: Mapping[str, Any]) -> dict[str, Any]:
    return cf.decode_custom_fields(task)


def _value(task: Mapping[str, Any], settings: RequestSettings, path: str) -> Any:
    gid = settings.fields.get(path)
    return _values(task).get(gid) if gid else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()


def _number(value: Any, label: str, problems: list[str]) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        problems.append(f"{label} {value!r} is not a number.")
        return None
    if not number.is_finite():
        problems.append(f"{label} {value!r} is not a number.")
        return None
    return number


def mask_pattern(mask: str) -> re.Pattern[str]:
    """`####-##-##` → digits per segment, literal separators (the agent's rule, ref §4)."""
    return re.compile("^" + "".join(r"[0-9A-Z]" if c == "#" else re.escape(c) for c in mask) + "$")


def parse_gl_target(target: str) -> tuple[str, str, str, str]:
    """`6000-00-00` or `5000-01-00|J000123|100-200|S` → (account, job_no, cost_code, cost_type)."""
    parts = [p.strip() for p in target.split("|")] + ["", "", ""]
    return parts[0].upper(), parts[1].upper(), parts[2].upper(), parts[3].upper()


def split_vendor(target: str, default_division: str) -> tuple[str, str]:
    """`01-ACME` / `0000001` → (division, vendor number) normalised as Sage stores them (ref §3)."""
    text = target.strip().upper()
    division, _, number = text.partition("-") if re.match(r"^\d{1,2}-", text) else ("", "", text)
    division = (division or default_division or "00").zfill(2)
    number = number.strip()
    return division, number.zfill(7) if number.isdigit() else number


def _cost_code(task: Mapping[str, Any], settings: RequestSettings) -> tuple[str, str]:
    """(what the task says, the mapped GL target or '')."""
    raw = _value(task, settings, "CostCode")
    text = _text(raw)
    if not text:
        return "", ""
    label = settings.option_names.get(text, text)
    target = settings.cost_codes.get(text) or settings.cost_codes.get(label.lower()) or ""
    return label, target


def _line(
    item: Mapping[str, Any],
    parent: Mapping[str, Any],
    settings: RequestSettings,
    label: str,
    problems: list[str],
    notes: list[str],
) -> RequestLine | None:
    before = len(problems)
    quantity = _number(_value(item, settings, "Quantity"), f"{label}: quantity", problems)
    quantity = Decimal(1) if quantity is None else quantity
    unit_cost = _number(_value(item, settings, "UnitCost"), f"{label}: unit cost", problems)
    amount = _number(_value(item, settings, "Amount"), f"{label}: amount", problems)
    if quantity <= 0:
        problems.append(f"{label}: quantity must be greater than zero (it is {quantity}).")
    if unit_cost is None and amount is not None and quantity > 0:
        unit_cost = amount / quantity
        if unit_cost != unit_cost.quantize(Decimal(1).scaleb(-MAX_DECIMALS)):
            problems.append(
                f"{label}: amount {amount} divided by quantity {quantity} is not exact to {MAX_DECIMALS} "
                "decimals; give a unit cost."
            )
        unit_cost = unit_cost.normalize()
    if unit_cost is None:
        problems.append(f"{label}: no amount or unit cost.")
    elif unit_cost <= 0:
        problems.append(f"{label}: the amount must be greater than zero (it is {unit_cost}).")
    for name, value in (("quantity", quantity), ("unit cost", unit_cost)):
        exponent = value.as_tuple().exponent if isinstance(value, Decimal) else 0
        if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
            problems.append(f"{label}: {name} {value} has more than {MAX_DECIMALS} decimals.")
    cost_label, target = _cost_code(item, settings)
    if not cost_label and item is not parent:
        cost_label, target = _cost_code(parent, settings)
    if not cost_label:
        problems.append(f"{label}: no cost code.")
    elif not target:
        problems.append(
            f"{label}: cost code {cost_label!r} has no GL account mapping (ValueMapping cost_code)."
        )
    account, job_no, cost_code, cost_type = parse_gl_target(target)
    if target and not mask_pattern(settings.gl_account_mask).match(account):
        problems.append(
            f"{label}: GL account {account!r} (cost code {cost_label!r}) does not match the account "
            f"format {settings.gl_account_mask}."
        )
    for column, value in (("JobNo", job_no), ("CostCode", cost_code), ("CostType", cost_type)):
        if len(value) > CODE_LIMITS[column]:
            problems.append(
                f"{label}: {column} {value!r} is longer than Sage's {CODE_LIMITS[column]} characters."
            )
    item_code = (_text(_value(item, settings, "ItemCode")) or settings.item_code).upper()
    if len(item_code) > CODE_LIMITS["ItemCode"] or not item_code.startswith("/"):
        problems.append(
            f"{label}: item code {item_code!r} must be a '/' miscellaneous item of 30 characters at most."
        )
    description = _text(_value(item, settings, "Description")) or _text(item.get("name"))
    full = ""
    if len(description) > DESCRIPTION_LIMIT:
        full = description
        description = description[:DESCRIPTION_LIMIT]
        notes.append(
            f"{label}: the description was cut to Sage's {DESCRIPTION_LIMIT} characters "
            f"(“{description}”); the full text is kept in a comment line of the PO."
        )
    if len(problems) > before:
        return None
    return RequestLine(
        description=description,
        quantity=quantity,
        unit_cost=unit_cost,  # type: ignore[arg-type] - None was reported above
        gl_account=account,
        job_no=job_no,
        cost_code=cost_code,
        cost_type=cost_type,
        item_code=item_code,
        full_description=full,
    )


def build_request(
    task: Mapping[str, Any], subtasks: Sequence[Mapping[str, Any]], settings: RequestSettings
) -> tuple[PurchaseRequest | None, list[str], list[str]]:
    """(request or None, problems, notes) for an approved task and its (open) subtasks."""
    problems: list[str] = []
    notes: list[str] = []
    vendor_text = _text(_value(task, settings, "VendorNo"))
    vendor_text = settings.option_names.get(vendor_text, vendor_text)
    division, vendor_no = "", ""
    if not vendor_text:
        problems.append("No vendor.")
    else:
        target = settings.vendors.get(vendor_text.lower())
        if not target:
            problems.append(
                f"Unknown vendor {vendor_text!r}: no vendor mapping (ValueMapping vendor) names it."
            )
        else:
            division, vendor_no = split_vendor(target, settings.default_division)
            if len(vendor_no) > CODE_LIMITS["VendorNo"] or len(division) > CODE_LIMITS["APDivisionNo"]:
                problems.append(f"Vendor {target!r} is longer than Sage's vendor number (7) or division (2).")
    items = [s for s in subtasks if not s.get("completed")] or [task]
    lines = []
    for index, item in enumerate(items, start=1):
        label = f"line {index} ({_text(item.get('name'))[:40]})" if item is not task else "the request"
        line = _line(item, task, settings, label, problems, notes)
        if line is not None:
            lines.append(line)
    required = _value(task, settings, "RequiredDate")
    if problems:
        return None, problems, notes
    return (
        PurchaseRequest(
            task_gid=str(task["gid"]),
            vendor_text=vendor_text,
            division=division,
            vendor_no=vendor_no,
            lines=tuple(lines),
            required_date=required if isinstance(required, date) else None,
        ),
        [],
        notes,
    )


def input_hash(
    task: Mapping[str, Any], subtasks: Sequence[Mapping[str, Any]], settings: RequestSettings
) -> str:
    """A digest of what the request is made of (mapped values, names): 'has the requester changed it?'"""
    watched = set(settings.fields.values())

    def of(item: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in _values(item).items() if k in watched}
        return {"name": item.get("name"), "completed": bool(item.get("completed")), "values": values}

    data = {"task": of(task), "subtasks": [of(s) for s in subtasks]}
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def po_payload(
    request: PurchaseRequest,
    *,
    po_date: date,
    requester_udf: Mapping[str, str] | None = None,
    requisitioner: str = "",
    confirm_to: str = "",
) -> dict:
    """The agent's create body (docs/sage100-agent.md §2.1). The task GID is the external id, which the
    agent writes to UDF_ASANA_GID and checks before creating (the second guard against a double PO).
    `requisitioner` / `confirm_to` (the requester's and approver's Sage users) are sent only when known:
    the agent writes them to RequisitorName / ConfirmTo (ref §2.2) and truncates over-long names."""
    lines: list[dict[str, Any]] = []
    for line in request.lines:
        body: dict[str, Any] = {
            "type": "misc",
            "item_code": line.item_code,
            "description": line.description,
            "quantity": format(line.quantity.normalize(), "f"),
            "unit_cost": format(line.unit_cost, "f"),
            "gl_account": line.gl_account,
        }
        if line.job_no:
            body["job"] = {"job_no": line.job_no, "cost_code": line.cost_code, "cost_type": line.cost_type}
        lines.append(body)
        if line.full_description:
            lines.append({"type": "comment", "text": line.full_description})
    payload: dict[str, Any] = {
        "external_id": request.task_gid,
        "vendor": {"division": request.division, "vendor_no": request.vendor_no},
        "po_date": po_date.isoformat(),
        "comment": f"Asana {request.task_gid}"[:DESCRIPTION_LIMIT],
        "udf": {"UDF_ASANA_GID": request.task_gid, **(requester_udf or {})},
        "lines": lines,
    }
    if request.required_date:
        payload["required_date"] = request.required_date.isoformat()
    if requisitioner:
        payload["requisitioner"] = requisitioner
    if confirm_to:
        payload["confirm_to"] = confirm_to
    return payload
