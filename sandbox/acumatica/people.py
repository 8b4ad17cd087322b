"""The sandbox's own clock and a person working in the Acumatica UI (controls).

Clock: `now()` is the host clock (or the one a test passes) plus `clock_offset`; LastModifiedDateTime,
`$filter` on dates (they compare stored values), session and token expiry, long operations and the
`Date` response header all use it. `set_clock_offset(seconds)` / `advance_clock(seconds)`.

A person: enters, edits, deletes bills and purchase orders, puts them on hold or takes them off, and
re-enters a deleted number (manual numbering). Every change bumps LastModifiedDateTime and fires the
push notification when push is configured — exactly as a change through the API does.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from ..core import SimError, control
from .common import ENTITY_KEYS, as_datetime

# What a person may edit on each document (contract field names, §3.1/§3.2).
EDITABLE = {
    "Bill": {
        "amount": "Amount",
        "vendor": "Vendor",
        "due_date": "DueDate",
        "vendor_ref": "VendorRef",
        "description": "Description",
        "date": "Date",
    },
    "PurchaseOrder": {
        "amount": "OrderTotal",
        "vendor": "VendorID",
        "vendor_ref": "VendorRef",
        "description": "Description",
        "date": "Date",
        "promised_on": "PromisedOn",
    },
}
KIND = {"bill": "Bill", "purchase_order": "PurchaseOrder", "Bill": "Bill", "PurchaseOrder": "PurchaseOrder"}


def _value(name: str, value: Any) -> Any:
    if name in ("DueDate", "Date", "PromisedOn") and isinstance(value, str):
        return as_datetime(date.fromisoformat(value[:10]))
    if isinstance(value, date) and not isinstance(value, datetime):
        return as_datetime(value)
    if name in ("Amount", "OrderTotal") and value is not None:
        return float(value)
    return value


class PeopleMixin:
    clock_offset: float

    # ---- the clock ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock() + timedelta(seconds=self.clock_offset)

    @control
    def set_clock_offset(self, seconds: float) -> str:
        """The sandbox's clock runs `seconds` ahead of (negative: behind) the host's; returns its time."""
        self.clock_offset = float(seconds)
        return self.now().isoformat()

    @control
    def advance_clock(self, seconds: float) -> str:
        """Move the sandbox's clock on (long operations finish, sessions and tokens expire)."""
        self.clock_offset += float(seconds)
        return self.now().isoformat()

    # ---- a person's changes -----------------------------------------------------------------------
    def _known_vendor(self, vendor: str) -> None:
        if (vendor,) not in self.records["Vendor"]:  # the form's selector offers only vendors
            raise SimError(400, {"message": f"'Vendor' {vendor!r} cannot be found in the system."})

    def _doc(self, entity: str, doc_type: str, number: str) -> dict:
        rec = self.records[entity].get((doc_type, number))
        if rec is None:
            raise SimError(404, {"message": f"no {entity} {doc_type} {number}"})
        return rec

    def update_record(self, entity: str, keys: tuple[str, ...], **changes: Any) -> dict:
        """Change a record as a user in the Acumatica UI would (bumps LastModifiedDateTime, pushes)."""
        with self.lock:
            rec = self.records[entity][tuple(keys)]
            before = dict(rec)
            rec.update(changes)
            self._touch(entity, rec, before)
        self._auto_flush()
        return rec

    def _edit(self, entity: str, doc_type: str, number: str, fields: dict[str, Any]) -> dict:
        rec = self._doc(entity, doc_type, number)
        changes = {}
        for key, value in fields.items():
            name = EDITABLE[entity].get(key, key)
            if name not in EDITABLE[entity].values():
                raise SimError(400, {"message": f"a person cannot edit {key!r} on a {entity} here"})
            changes[name] = _value(name, value)
            if name in ("Vendor", "VendorID"):
                self._known_vendor(value)
        if entity == "Bill" and "Amount" in changes:
            changes["Balance"] = changes["Amount"]
            if len(rec.get("Details") or []) == 1:
                line = dict(rec["Details"][0], Amount=changes["Amount"], UnitCost=changes["Amount"])
                changes["Details"] = [line]
        if entity == "PurchaseOrder" and "OrderTotal" in changes:
            changes["LineTotal"] = changes["OrderTotal"]
        before = dict(rec)
        rec.update(changes)
        self._touch(entity, rec, before)
        return dict(rec)

    @control
    def person_enter_bill(self, vendor: str, amount: float, **fields: Any) -> dict:
        """A person enters a bill on AP301000 (`reference_nbr` given: manual numbering, and a deleted
        number may be entered again). Returns the stored record."""
        self._known_vendor(vendor)
        ref = fields.get("reference_nbr")
        doc_type = fields.get("type", "Bill")
        if ref and (doc_type, ref) in self.records["Bill"]:
            raise SimError(409, {"message": f"bill {doc_type} {ref} already exists"})
        if "date" in fields:
            fields["date_"] = fields.pop("date")
        for name in ("due_date", "date_"):
            if isinstance(fields.get(name), str):
                fields[name] = date.fromisoformat(fields[name][:10])
        bill = self.add_bill(vendor, float(amount), **fields)
        self.deleted["Bill"].discard((bill["Type"], bill["ReferenceNbr"]))
        self._touch("Bill", bill, None)
        return dict(bill)

    @control
    def person_edit_bill(self, type: str, nbr: str, **fields: Any) -> dict:  # noqa: A002
        """amount, vendor, due_date, vendor_ref, description, date."""
        return self._edit("Bill", type, nbr, fields)

    @control
    def person_delete_bill(self, type: str, nbr: str) -> bool:  # noqa: A002
        self._remove("Bill", self._doc("Bill", type, nbr))
        return True

    @control
    def person_hold(self, type: str, nbr: str, hold: bool = True, kind: str = "bill") -> dict:  # noqa: A002
        """Put a bill (kind="bill") or purchase order (kind="purchase_order") on hold, or take it off."""
        entity = KIND[kind]
        rec = self._doc(entity, type, nbr)
        before = dict(rec)
        self._apply(entity, rec, {"Hold": bool(hold)})
        rec["Hold"] = bool(hold)
        self._touch(entity, rec, before)
        return dict(rec)

    @control
    def person_enter_purchase_order(self, vendor: str, total: float, **fields: Any) -> dict:
        self._known_vendor(vendor)
        nbr = fields.get("order_nbr")
        doc_type = fields.get("type", "Normal")
        if nbr and (doc_type, nbr) in self.records["PurchaseOrder"]:
            raise SimError(409, {"message": f"purchase order {doc_type} {nbr} already exists"})
        po = self.add_purchase_order(vendor, float(total), **fields)
        self.deleted["PurchaseOrder"].discard((po["Type"], po["OrderNbr"]))
        self._touch("PurchaseOrder", po, None)
        return dict(po)

    @control
    def person_edit_purchase_order(self, type: str, nbr: str, **fields: Any) -> dict:  # noqa: A002
        """amount, vendor, vendor_ref, description, date, promised_on."""
        return self._edit("PurchaseOrder", type, nbr, fields)

    @control
    def person_delete_purchase_order(self, type: str, nbr: str) -> bool:  # noqa: A002
        self._remove("PurchaseOrder", self._doc("PurchaseOrder", type, nbr))
        return True

    @control
    def record_of(self, entity: str, keys: list[str]) -> dict | None:
        """The stored record (plain values) — what a person sees on the form."""
        rec = self.records[entity].get(tuple(keys))
        return dict(rec) if rec else None

    @control
    def list_records(self, entity: str) -> list[dict]:
        """Every stored record of `entity` (plain values, key order) — what a person sees on the list
        screen (AP301000, PO301000, …); read-only, and outside seats, faults and rate limits like every
        control, so a page showing the sandbox never takes a seat from the connector."""
        if entity not in self.records:
            raise SimError(404, {"message": f"no entity {entity!r}"})
        self.finish_due_operations()
        return [dict(rec) for _key, rec in sorted(self.records[entity].items())]

    @control
    def key_fields(self, entity: str) -> list[str]:
        return list(ENTITY_KEYS[entity])
