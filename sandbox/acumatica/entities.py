"""Records: list, get, put (upsert), delete, and how they are rendered (reference §4).

- GET list honours `$filter`, `$top`/`$skip` (skip first, no count), `$expand`, `$select` (nested
  `Linked/Field` and `Details/Field` too) and `$custom` (`View.Field`); any other `$` parameter is
  refused (odata.check_parameters).
- PUT is an upsert located by keys or `id`; `If-Match: *` / `If-None-Match: *` give 412 (§4.3). A
  document missing a required field, or naming a vendor or account that does not exist, is answered
  422 with the entity echoed and `error` on each offending value (§6.2).
- DELETE by keys or by id answers 204 (§4.3); a missing record is the 500 NoEntitySatisfiesTheCondition.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from ..core import SimRequest, SimResponse
from .common import (
    DETAIL_FIELDS,
    ENTITY_KEYS,
    GUID_RE,
    LINKED_FIELDS,
    PUSH_QUERIES,
    SPEC_VERSION,
    dac_title,
    http_error,
    no_entity,
    plain,
    wrap_fields,
    wrap_value,
)
from .odata import check_parameters, custom_fields, expand_paths, parse_filter, select_paths

# A required field left empty: PXDefault's "'{0}' cannot be empty." (the field's display name).
REQUIRED = {"Bill": ("Vendor",), "PurchaseOrder": ("VendorID",)}
# Views reachable with $custom and the DAC fields they expose, mapped to our stored fields (META24).
VIEW_FIELDS: dict[str, dict[str, dict[str, str]]] = {
    "Bill": {
        "Document": {
            "DocType": "Type",
            "RefNbr": "ReferenceNbr",
            "InvoiceNbr": "VendorRef",
            "VendorID": "Vendor",
            "CuryOrigDocAmt": "Amount",
            "DocDesc": "Description",
            "Status": "Status",
            # APInvoice fields outside the Default contract (reference §4.2 `$custom`): kept in the
            # record's custom block by the seed (add_bill(discount_date=, created_by=)), else empty.
            "DiscDate": "DiscDate",
            "CuryOrigDiscAmt": "CuryOrigDiscAmt",
            "CreatedByID": "CreatedByID",
        }
    },
    "PurchaseOrder": {
        "Document": {
            "OrderType": "Type",
            "OrderNbr": "OrderNbr",
            "VendorID": "VendorID",
            "VendorRefNbr": "VendorRef",
            "CuryOrderTotal": "OrderTotal",
            "OrderDesc": "Description",
            "Status": "Status",
        }
    },
    "Employee": {"Employee": {"AcctCD": "EmployeeID", "AcctName": "EmployeeName"}},
    "Vendor": {"BAccount": {"AcctCD": "VendorID", "AcctName": "VendorName"}},
    "Account": {"AccountRecords": {"AccountCD": "AccountCD", "Description": "Description"}},
}


def custom_type(value: Any) -> str:
    if isinstance(value, bool):
        return "CustomBooleanField"
    if isinstance(value, int):
        return "CustomIntField"
    if isinstance(value, float):
        return "CustomDecimalField"
    if isinstance(value, datetime):
        return "CustomDateTimeField"
    return "CustomStringField"


class EntitiesMixin:
    # ---- routes --------------------------------------------------------------------------------
    def _list(self, req: SimRequest, ep: str, ver: str, entity: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        check_parameters(req)
        condition = parse_filter(req.arg("$filter")) if req.arg("$filter") else None
        skip, top = int(req.arg("$skip") or 0), req.arg("$top")
        rows = [r for r in self.records[entity].values() if condition is None or condition(r)]
        rows = rows[skip:] if top is None else rows[skip : skip + int(top)]
        return SimResponse.json([self._render(entity, r, req) for r in rows])

    def _get(self, req: SimRequest, ep: str, ver: str, entity: str, keys: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        check_parameters(req, ("$expand", "$select", "$custom"))
        rec = self._find(entity, [unquote(k) for k in keys.split("/")])
        if rec is None:
            raise no_entity()
        return SimResponse.json(self._render(entity, rec, req))

    def _delete(self, req: SimRequest, ep: str, ver: str, entity: str, keys: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        rec = self._find(entity, [unquote(k) for k in keys.split("/")])
        if rec is None:
            raise no_entity()
        self._check_lock(entity, rec)
        if entity == "Bill" and rec.get("Status") in ("Open", "Closed", "Voided"):
            # UNVERIFIED text: AP301000 offers Delete only before release (AIR-UG AP_30_10_00).
            raise http_error(f"The document cannot be deleted because its status is {rec['Status']}.")
        self._remove(entity, rec)
        return SimResponse.empty(204)

    def _put(self, req: SimRequest, ep: str, ver: str, entity: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        check_parameters(req, ("$expand", "$select", "$custom", "$filter"))
        body = req.json()
        existing = self._find_by_body(entity, body)
        if existing is None and req.headers.get("If-Match") == "*":
            raise http_error("The entity does not exist and cannot be updated.", status=412)
        if existing is not None and req.headers.get("If-None-Match") == "*":
            raise http_error("An entity with these keys already exists and cannot be inserted.", status=412)
        if existing is not None:
            self._check_lock(entity, existing)
        values = plain(body)
        if self._validate(entity, body, values, existing):
            verb = "Updating" if existing else "Inserting"
            echo = dict(
                body,
                error=f"{verb}  '{dac_title(entity)}' record raised at least one error. "
                "Please review the errors.",
            )
            return SimResponse.json(echo, 422)
        if existing is None:
            rec = self._create(entity, values)
        else:
            before = dict(existing)
            self._apply(entity, existing, values)
            self._touch(entity, existing, before)
            rec = existing
        self._store_custom(entity, rec, body.get("custom"))
        return SimResponse.json(self._render(entity, rec, req))

    # ---- validation and writes -------------------------------------------------------------------
    def _validate(self, entity: str, body: dict, values: dict, existing: dict | None) -> bool:
        """Mark offending values with `error` in place (the 422 echo, §6.2); True if any."""
        bad = False

        def mark(obj: dict, name: str, message: str) -> None:
            nonlocal bad
            obj.setdefault(name, {})["error"] = message
            bad = True

        for name in REQUIRED.get(entity, ()):
            if (existing is None and values.get(name) in (None, "")) or (
                name in values and values[name] in (None, "")
            ):
                mark(body, name, f"'{name}' cannot be empty.")
        vendor_field = {"Bill": "Vendor", "PurchaseOrder": "VendorID"}.get(entity)
        vendors = {k[0] for k in self.records["Vendor"]}
        if (
            vendor_field
            and values.get(vendor_field) not in (None, "")
            and values[vendor_field] not in vendors
        ):
            mark(body, vendor_field, f"'{vendor_field}' cannot be found in the system.")
        if entity == "Bill":
            if isinstance(values.get("Amount"), int | float) and values["Amount"] < 0:
                mark(body, "Amount", "'Amount' cannot be negative.")
            accounts = {k[0] for k in self.records["Account"]}
            for line, raw in zip(values.get("Details") or [], body.get("Details") or [], strict=False):
                if line.get("Account") is not None and line["Account"] not in accounts:
                    mark(raw, "Account", f"Account '{line['Account']}' cannot be found in the system.")
                if isinstance(line.get("Amount"), int | float) and line["Amount"] < 0:
                    mark(raw, "Amount", "'Amount' cannot be negative.")
        return bad

    def _create(self, entity: str, values: dict) -> dict:
        if entity == "Bill":
            values.pop("ReferenceNbr", None)  # auto-numbered: a sent number "has no effect" (§3.1)
            details = values.get("Details") or []
            amount = values.get("Amount", sum(float(d.get("Amount") or 0) for d in details))
            status = "On Hold" if values.get("Hold", True) else "Balanced"
            fields = {
                k: v for k, v in values.items() if k not in ("Amount", "Status", "Hold", "Type", "Vendor")
            }
            bill = self.add_bill(
                values.get("Vendor"),
                amount,
                type=values.get("Type", "Bill"),
                status=status,
                details=fields.pop("Details", None),
                **fields,
            )
            self._touch("Bill", bill, None)
            return bill
        keys = ENTITY_KEYS[entity]
        if any(values.get(k) is None for k in keys):
            raise http_error(f"'{keys[-1]}' cannot be empty.", status=400)
        return self._store(entity, values)

    def _apply(self, entity: str, rec: dict, values: dict) -> None:
        for key, value in values.items():
            if key in ENTITY_KEYS[entity] or key in ("Status", "id"):
                continue
            if key == "Details":
                rec["Details"] = list(rec.get("Details") or []) + [d for d in value if not d.get("id")]
            else:
                rec[key] = value
        if entity in ("Bill", "PurchaseOrder") and "Hold" in values:
            if values["Hold"]:
                rec["Status"] = "On Hold"
            elif rec["Status"] == "On Hold":
                ref = rec.get("ReferenceNbr") if entity == "Bill" else rec.get("OrderNbr")
                pending = (rec["Type"], ref) in self.requires_approval
                rec["Status"] = (
                    "Pending Approval" if pending else ("Balanced" if entity == "Bill" else "Open")
                )

    def _store_custom(self, entity: str, rec: dict, custom: Any) -> None:
        """User-defined (Usr*) fields sent in a `custom` block are kept per view (§4.1)."""
        if not isinstance(custom, dict):
            return
        for view, fields in custom.items():
            if not isinstance(fields, dict):
                continue
            for name, value in fields.items():
                if isinstance(value, dict) and "value" in value:
                    rec.setdefault("custom", {}).setdefault(view, {})[name] = value["value"]

    def lock_record(self, entity: str, keys: tuple[str, ...], times: int = 1) -> None:
        """The next `times` writes to this record fail with Acumatica's concurrency error."""
        self.locks[(entity, tuple(keys))] = times

    def _check_lock(self, entity: str, rec: dict) -> None:
        key = (entity, tuple(rec[k] for k in ENTITY_KEYS[entity]))
        if self.locks.get(key, 0) > 0:
            self.locks[key] -= 1
            raise http_error(
                f"Another process has updated the '{dac_title(entity)}' record. Your changes will be lost.",
                "PX.Data.PXLockViolationException",
            )

    # ---- storage ---------------------------------------------------------------------------------
    def _find(self, entity: str, keys: list[str]) -> dict | None:
        if len(keys) == 1 and GUID_RE.match(keys[0]):
            return next((r for r in self.records[entity].values() if r["id"] == keys[0]), None)
        return self.records[entity].get(tuple(keys))

    def _find_by_body(self, entity: str, body: dict) -> dict | None:
        if body.get("id"):
            return self._find(entity, [body["id"]])
        keys = [(body.get(k) or {}).get("value") for k in ENTITY_KEYS[entity]]
        return None if None in keys else self.records[entity].get(tuple(str(k) for k in keys))

    def _next(self, name: str, start: int) -> int:
        self._counters[name] = self._counters.get(name, start - 1) + 1
        return self._counters[name]

    def _store(
        self, entity: str, fields: dict, *, modified: datetime | None = None, push: bool = True
    ) -> dict:
        rec = {k: v for k, v in fields.items() if v is not None}
        rec["id"] = str(uuid.uuid4())
        for line in rec.get("Details") or []:
            line.setdefault("id", str(uuid.uuid4()))
        key = tuple(str(rec[k]) for k in ENTITY_KEYS[entity])
        self.records[entity][key] = rec
        self._touch(entity, rec, None, modified=modified, push=push)
        return rec

    def _remove(self, entity: str, rec: dict) -> None:
        key = tuple(str(rec[k]) for k in ENTITY_KEYS[entity])
        del self.records[entity][key]
        self.deleted[entity].add(key)
        self._drop_files(rec)
        if entity in PUSH_QUERIES and self.push:
            self._queue_push(entity, None, rec)

    def _touch(
        self,
        entity: str,
        rec: dict,
        before: dict | None,
        *,
        modified: datetime | None = None,
        push: bool = True,
    ) -> None:
        now = modified or max(self.now(), self._last_modified + timedelta(milliseconds=1))
        self._last_modified = max(self._last_modified, now)
        rec["LastModifiedDateTime"] = now
        if push and entity in PUSH_QUERIES and self.push:
            self._queue_push(entity, rec, before)

    # ---- rendering ---------------------------------------------------------------------------------
    def _render(self, entity: str, rec: dict, req: SimRequest | None) -> dict:
        expand = expand_paths(req)
        select = select_paths(req)
        top_select = {path[0] for path in select}
        out: dict[str, Any] = {
            "id": rec["id"],
            "rowNumber": 1,
            "custom": self._render_custom(entity, rec, req),
        }
        for key, value in rec.items():
            if key in ("id", "custom") or (select and key not in top_select):
                continue
            if key in DETAIL_FIELDS[entity] or key in LINKED_FIELDS.get(entity, ()):
                if key not in expand:
                    continue
                nested = {p[1] for p in select if len(p) > 1 and p[0] == key}
                if isinstance(value, list):
                    out[key] = [
                        dict(wrap_fields(_only(line, nested, keep_id=True)), rowNumber=i + 1)
                        for i, line in enumerate(value)
                    ]
                else:
                    out[key] = wrap_fields(_only(value, nested))
            else:
                out[key] = wrap_value(value)
        if "files" in expand:
            out["files"] = self._file_links(entity, rec)
        out["_links"] = {"self": self._self_link(entity, rec, relative=True)}
        return out

    def _render_custom(self, entity: str, rec: dict, req: SimRequest | None) -> dict:
        out: dict[str, Any] = {}
        for owner, view, name in custom_fields(req):
            if owner is not None:
                continue  # detail-level custom fields: none are defined on our entities
            mapped = VIEW_FIELDS.get(entity, {}).get(view, {})
            stored = (rec.get("custom") or {}).get(view, {})
            if name in stored:
                value = stored[name]
            elif name in mapped:
                value = rec.get(mapped[name])
            else:
                # UNVERIFIED text: a field the view does not have is refused, not silently dropped.
                raise http_error(f"The field {view}.{name} is not found in the {dac_title(entity)} screen.")
            field = {"type": custom_type(value), **wrap_value(value)}
            out.setdefault(view, {})[name] = field
        return out

    def _self_link(self, entity: str, rec: dict, *, relative: bool = False) -> str:
        path = f"{self.base_path}/entity/Default/{SPEC_VERSION}/{entity}/{rec['id']}"
        return path if relative else self.base_url[: len(self.base_url) - len(self.base_path)] + path


def _only(fields: dict, names: set[str], *, keep_id: bool = False) -> dict:
    if not names:
        return fields
    return {k: v for k, v in fields.items() if k in names or (keep_id and k == "id")}
