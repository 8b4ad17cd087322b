"""A proposed field mapping for a documents flow: by the field's name and type, confirmed or changed
by the operator, refused when the type cannot hold the value (mappings/discovery.py `refusal`).

Roles and what each needs (the issue's words):
    amount     → a number field      (Bill.Amount / PurchaseOrder.OrderTotal)
    due date   → a date field        (Bill.DueDate / PurchaseOrder.PromisedOn)
    vendor     → an enum field, each vendor matched to an option by name or id (a text field also
                 takes the vendor id as is)
    reference  → a text field        (the natural key Type/Number; the flow's ERP reference field)

A field is proposed for a role when its name contains one of the role's words (case and punctuation
ignored) and its type fits; the operator's choice wins over the proposal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mappings.discovery import refusal

ROLES: dict[str, dict[str, Any]] = {
    "amount": {
        "words": ("amount", "total", "value", "cost"),
        "types": ("number",),
        "paths": {"acumatica_bills": "Amount", "acumatica_purchase_orders": "OrderTotal"},
        "source_type": "number",
    },
    "due_date": {
        "words": ("due", "date", "promised"),
        "types": ("date",),
        "paths": {"acumatica_bills": "DueDate", "acumatica_purchase_orders": "PromisedOn"},
        "source_type": "date",
    },
    "vendor": {
        "words": ("vendor", "supplier", "subcontractor"),
        "types": ("enum", "text"),
        "paths": {"acumatica_bills": "Vendor", "acumatica_purchase_orders": "VendorID"},
        "source_type": "text",
    },
    "reference": {
        "words": ("reference", "erp", "ref", "number", "document"),
        "types": ("text",),
        "paths": {"acumatica_bills": "ReferenceNbr", "acumatica_purchase_orders": "OrderNbr"},
        "source_type": "text",
    },
}
ROLE_LABELS = {"amount": "Amount", "due_date": "Due date", "vendor": "Vendor", "reference": "ERP reference"}


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", (text or "").casefold())


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", (text or "").casefold()))


@dataclass
class VendorMatch:
    vendor_id: str
    vendor_name: str
    option_gid: str = ""
    option_name: str = ""

    @property
    def matched(self) -> bool:
        return bool(self.option_gid)


@dataclass
class Proposal:
    """{role: field GID} proposed (or chosen), the refusals, and the vendor ↔ option matches."""

    kind: str
    fields: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    vendors: list[VendorMatch] = field(default_factory=list)

    def source_path(self, role: str) -> str:
        return ROLES[role]["paths"][self.kind]

    @property
    def unmatched_vendors(self) -> list[VendorMatch]:
        return [v for v in self.vendors if not v.matched]

    @property
    def ok(self) -> bool:
        return not self.refused


def _score(role: str, spec: Any) -> int:
    """How well a field's name and type fit a role (0: not at all)."""
    info = ROLES[role]
    if spec.type not in info["types"] or spec.is_formula_field or spec.is_value_read_only:
        return 0
    words = _words(spec.name)
    hits = [w for w in info["words"] if w in words]
    if not hits:
        return 0
    # the first word listed is the role's own name: it counts most; a preferred type counts too
    return 10 * (len(info["words"]) - info["words"].index(hits[0])) + (5 - info["types"].index(spec.type))


def propose(kind: str, specs: Mapping[str, Any], chosen: Mapping[str, str] | None = None) -> Proposal:
    """The best field for each role by name and type; `chosen` ({role: GID or ""}) overrides and is
    checked: a field whose type cannot hold the role's value is refused with the reason."""
    proposal = Proposal(kind)
    used: set[str] = set()
    chosen = chosen or {}
    for role in ROLES:
        if role in chosen:
            gid = chosen[role]
            if not gid:
                continue
            spec = specs.get(gid)
            if spec is None:
                proposal.refused[role] = f"field {gid} is not on the project"
                continue
            why = refusal(proposal.source_path(role), ROLES[role]["source_type"], spec)
            if why is None and spec.type not in ROLES[role]["types"]:
                why = (
                    f"{ROLE_LABELS[role]} needs a {' or '.join(ROLES[role]['types'])} field; "
                    f"{spec.name!r} is a {spec.type} field"
                )
            if why:
                proposal.refused[role] = why
                continue
            proposal.fields[role] = gid
            used.add(gid)
            continue
        ranked = sorted(
            ((s, gid) for gid, spec in specs.items() if gid not in used and (s := _score(role, spec)) > 0),
            reverse=True,
        )
        if ranked:
            proposal.fields[role] = ranked[0][1]
            used.add(ranked[0][1])
    return proposal


def match_vendors(spec: Any, vendors: Iterable[Mapping[str, Any]]) -> list[VendorMatch]:
    """Each Acumatica vendor against the enum field's enabled options: by option name equal to the
    vendor's name or id (case and punctuation ignored), else an option name contained in the vendor's
    name or the other way round."""
    options = [o for o in spec.enum_options.values() if o.enabled]
    out = []
    for vendor in vendors:
        vid, name = str(vendor.get("VendorID") or ""), str(vendor.get("VendorName") or "")
        match = VendorMatch(vid, name)
        keys = {_norm(vid), _norm(name)} - {""}
        exact = [o for o in options if _norm(o.name) in keys]
        loose = [
            o
            for o in options
            if _norm(o.name) and any(_norm(o.name) in k or k in _norm(o.name) for k in keys)
        ]
        best = (exact or loose or [None])[0]
        if best is not None:
            match.option_gid, match.option_name = best.gid, best.name
        out.append(match)
    return out
