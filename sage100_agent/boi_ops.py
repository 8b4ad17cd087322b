"""The BOI read sequences and call primitives (reference sage100.md §1-§4); writes are in ``boi_write.py``.

Each public method takes a :class:`~.boi.BOISession` and talks to ProvideX objects only through
``session.call`` so return codes are checked in one place. Names marked [U] in the reference are kept
in one spot each so they can be corrected against the customer's Object Reference (§10.1, §11).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, tzinfo
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .byref import out_for
from .fields import CONFIRM_TO_COLUMN, REQUISITIONER_COLUMN, sage_to_utc
from .model import (
    AgentError,
    GLAccount,
    JobRef,
    Notice,
    POLine,
    PurchaseOrder,
    Vendor,
)

if TYPE_CHECKING:
    from .boi import BOISession
    from .config import BOIConfig

#: §1.4 module, task and objects per area
AREAS = {"P/O": "PO_PurchaseOrder_ui", "A/P": "AP_Vendor_UI", "G/L": "GL_Account_ui"}
_HEADER_FIELDS = (
    "PurchaseOrderDate$",
    "APDivisionNo$",
    "VendorNo$",
    "OrderStatus$",
    "OrderType$",
    "OnHold$",
    "Comment$",
    f"{REQUISITIONER_COLUMN}$",
    f"{CONFIRM_TO_COLUMN}$",
    "DateUpdated$",
    "TimeUpdated$",
)
_LINE_FIELDS = (
    "LineKey$",
    "ItemCode$",
    "ItemType$",
    "ItemCodeDesc$",
    "QuantityOrdered",
    "UnitCost",
    "ExtensionAmt",
    "PurchasesAcctKey$",
    "WarehouseCode$",
    "CommentText$",
    "JobNo$",
    "CostCode$",
    "CostType$",
)
_VENDOR_FIELDS = (
    "APDivisionNo$",
    "VendorNo$",
    "VendorName$",
    "VendorStatus$",
    "TermsCode$",
    "AccountKey$",
    "DateUpdated$",
    "TimeUpdated$",
)
_GL_FIELDS = ("AccountKey$", "Account$", "AccountDesc$", "Status$", "MainAccountCode$", "AccountType$")


def _dec(value: Any) -> Decimal:
    try:
        return Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        return Decimal(0)


@dataclass
class BOIReads:
    cfg: BOIConfig
    tz: tzinfo | None
    today: Callable[[], date]
    lock_pattern: re.Pattern[str]
    cfg_udf: str = "UDF_ASANA_GID"

    def __post_init__(self) -> None:
        self._names = self.cfg.names  # boi_names.METHODS defaults + agent.toml [boi.methods]

    def m(self, logical: str) -> str:
        """The configured name of a BOI method (``boi_names.METHODS``)."""
        return self._names[logical]

    # --- primitives -----------------------------------------------------------------------------------

    def check(
        self,
        s: BOISession,
        obj: Any,
        method: str,
        *args: Any,
        step: str,
        field: str | None = None,
        notices: list[Notice] | None = None,
        ok: tuple[int, ...] = (1,),
    ) -> tuple[Any, ...]:
        """Call and check: ``ok`` codes pass, -1 passes with a kept warning, anything else raises (§1.2)."""
        code, outs = s.call(obj, method, *args)
        if code in ok:
            return outs
        message = str(getattr(obj, "sLastErrorMsg", "") or "")  # read on the SAME object (§1.3)
        if code == -1:
            if notices is not None:
                notices.append(Notice(step, field, message or f"{method} returned a warning"))
            return outs
        if self.lock_pattern.search(message):
            raise AgentError(
                "RECORD_LOCKED",
                "Sage record is locked by another user; retry later",
                step=step,
                field=field,
                sage_message=message,
                retry_after=5,
            )
        raise AgentError(
            "SAGE_VALIDATION",
            f"Sage refused {method}({field or ''})",
            step=step,
            field=field,
            sage_message=message,
        )

    def context(self, s: BOISession, module: str) -> None:
        """Module date, module and program, reset on every request (§8.2: a stale date is a classic bug)."""
        ss = s.ss
        self.check(s, ss, self.m("set_date"), module, self.today().strftime("%Y%m%d"), step="session")
        self.check(s, ss, self.m("set_module"), module, step="session")
        code, _ = s.call(ss, self.m("lookup_task"), AREAS[module])
        self.check(s, ss, self.m("set_program"), code, step="session")

    def get(self, s: BOISession, obj: Any, column: str) -> Any:
        # nGetValue(column$, ByRef value) (§1.5): the output is a by-reference VARIANT typed by the
        # column ($ = string, else number, §1.2), or the tuple's second item when type information exists.
        _, outs = s.call(obj, self.m("get_value"), column, out_for(column))
        return outs[0] if outs else ""

    def row(self, s: BOISession, obj: Any, columns: tuple[str, ...]) -> dict[str, Any]:
        return {c.rstrip("$"): self.get(s, obj, c) for c in columns}

    def scan(
        self,
        s: BOISession,
        obj: Any,
        columns: tuple[str, ...],
        keep: Callable[[dict[str, Any]], bool],
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """``nMoveFirst``/``nMoveNext`` until ``nEOF`` (§1.5), capped at ``max_scan_rows`` (§8.7)."""
        rows: list[dict[str, Any]] = []
        s.call(obj, self.m("move_first"))
        seen = 0
        while not int(getattr(obj, self.m("eof"), 1) or 0) and seen < self.cfg.max_scan_rows:
            seen += 1
            values = self.row(s, obj, columns)
            if keep(values):
                rows.append(values)
                if limit is not None and len(rows) >= limit:
                    break
            s.call(obj, self.m("move_next"))
        return rows

    def new(self, s: BOISession, name: str) -> Any:
        return s.script.NewObject(name, s.ss)

    @staticmethod
    def drop(*objects: Any) -> None:
        """Release children before parents (§1.1)."""
        for obj in objects:
            if obj is not None:
                with contextlib.suppress(Exception):  # DropObject's signature is [U]; best effort
                    obj.DropObject()

    # --- reads ----------------------------------------------------------------------------------------

    def ping(self, s: BOISession) -> dict[str, Any]:
        return {"boi": "ok", "company": str(getattr(s.ss, "sCompanyCode", "") or s.company)}

    def _vendor(self, r: dict[str, Any]) -> Vendor:
        updated = sage_to_utc(str(r["DateUpdated"]), str(r["TimeUpdated"]), self.tz)
        return Vendor(
            division=r["APDivisionNo"],
            vendor_no=r["VendorNo"],
            name=r["VendorName"],
            status=r["VendorStatus"] or "A",
            terms_code=r["TermsCode"],
            default_account_key=r["AccountKey"],
            updated_at=updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else None,
        )

    def get_vendor(self, s: BOISession, division: str, vendor_no: str) -> Vendor:
        self.context(s, "A/P")
        svc = self.new(s, "AP_Vendor_svc")
        try:
            s.call(svc, self.m("set_key_value"), "APDivisionNo$", division)
            s.call(svc, self.m("set_key_value"), "VendorNo$", vendor_no)
            code, _ = s.call(svc, self.m("find"))
            if code != 1:
                raise AgentError("NOT_FOUND", f"vendor {division}-{vendor_no} not found", field="VendorNo$")
            return self._vendor(self.row(s, svc, _VENDOR_FIELDS))
        finally:
            self.drop(svc)

    def search_vendors(
        self, s: BOISession, q: str, division: str | None, after: str | None, limit: int
    ) -> list[Vendor]:
        self.context(s, "A/P")
        svc = self.new(s, "AP_Vendor_svc")
        needle = q.upper()

        def keep(r: dict[str, Any]) -> bool:
            vid = f"{r['APDivisionNo']}-{r['VendorNo']}"
            return (
                (not needle or needle in f"{r['VendorNo']} {r['VendorName']}".upper())
                and (division is None or r["APDivisionNo"] == division)
                and vid > (after or "")
            )

        try:  # KPRIMARY order is division + vendor number, so the scan is already sorted (§3)
            return [self._vendor(r) for r in self.scan(s, svc, _VENDOR_FIELDS, keep, limit)]
        finally:
            self.drop(svc)

    def _gl(self, r: dict[str, Any]) -> GLAccount:
        return GLAccount(
            account_key=r["AccountKey"],
            account=r["Account"],
            description=r["AccountDesc"],
            status=r["Status"],
            main_account_code=r["MainAccountCode"],
            account_type=r["AccountType"],
        )

    def get_gl_account(self, s: BOISession, account_or_key: str) -> GLAccount:
        self.context(s, "G/L")
        svc = self.new(s, "GL_Account_svc")
        try:
            if "-" in account_or_key or len(account_or_key) != 9:
                # Formatted account -> AccountKey through index KACCOUNT (§4; the index call is [U]).
                s.call(svc, self.m("set_index"), "kACCOUNT")
                s.call(svc, self.m("set_key_value"), "Account$", account_or_key)
            else:
                s.call(svc, self.m("set_key_value"), "AccountKey$", account_or_key)
            code, _ = s.call(svc, self.m("find"))
            if code != 1:
                raise AgentError(
                    "NOT_FOUND", f"GL account {account_or_key} not found", field="PurchasesAcctKey$"
                )
            return self._gl(self.row(s, svc, _GL_FIELDS))
        finally:
            self.drop(svc)

    def list_gl_accounts(
        self, s: BOISession, q: str, status: str | None, after: str | None, limit: int
    ) -> list[GLAccount]:
        self.context(s, "G/L")
        svc = self.new(s, "GL_Account_svc")
        needle = q.upper()

        def keep(r: dict[str, Any]) -> bool:
            return (
                (not needle or needle in f"{r['Account']} {r['AccountDesc']}".upper())
                and (status is None or r["Status"] == status)
                and r["Account"] > (after or "")
            )

        try:
            rows = self.scan(s, svc, _GL_FIELDS, keep)
        finally:
            self.drop(svc)
        return sorted((self._gl(r) for r in rows), key=lambda a: a.account)[:limit]

    def _lines(self, s: BOISession, po_number: str) -> list[POLine]:
        svc = self.new(s, "PO_PurchaseOrderDetail_svc")
        try:  # browse filter on the key prefix PurchaseOrderNo (§1.5 nSetBrowseFilter; [U] for detail)
            s.call(svc, self.m("set_browse_filter"), po_number)
            rows = self.scan(s, svc, _LINE_FIELDS, lambda r: True)
        finally:
            self.drop(svc)
        return [
            POLine(
                line_key=r["LineKey"],
                item_code=r["ItemCode"],
                item_type=str(r["ItemType"]),
                description=r["ItemCodeDesc"],
                quantity=_dec(r["QuantityOrdered"]),
                unit_cost=_dec(r["UnitCost"]),
                extension_amt=_dec(r["ExtensionAmt"]),
                gl_account_key=r["PurchasesAcctKey"],
                warehouse_code=r["WarehouseCode"],
                comment_text=r["CommentText"],
                job=JobRef(r["JobNo"], r["CostCode"], r["CostType"]) if r["JobNo"] else None,
            )
            for r in rows
        ]

    def _po(self, s: BOISession, po_number: str, r: dict[str, Any], include_lines: bool) -> PurchaseOrder:
        updated = sage_to_utc(str(r["DateUpdated"]), str(r["TimeUpdated"]), self.tz)
        day = str(r["PurchaseOrderDate"])
        return PurchaseOrder(
            po_number=po_number,
            division=r["APDivisionNo"],
            vendor_no=r["VendorNo"],
            po_date=f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) == 8 else day,
            status=r["OrderStatus"],
            order_type=r["OrderType"],
            external_id=r.get(self.cfg_udf, ""),
            lines=self._lines(s, po_number) if include_lines else [],
            updated_at=updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else None,
            date_updated=str(r["DateUpdated"]),
            time_updated=str(r["TimeUpdated"]),
            comment=r["Comment"],
            on_hold=r["OnHold"] == "Y",
            udf={self.cfg_udf: r.get(self.cfg_udf, "")},
            requisitioner=str(r.get(REQUISITIONER_COLUMN) or ""),
            confirm_to=str(r.get(CONFIRM_TO_COLUMN) or ""),
        )

    def get_purchase_order(self, s: BOISession, po_number: str) -> PurchaseOrder:
        self.context(s, "P/O")
        svc = self.new(s, "PO_PurchaseOrder_svc")
        try:
            s.call(svc, self.m("set_key_value"), "PurchaseOrderNo$", po_number)
            code, _ = s.call(svc, self.m("find"))
            if code != 1:
                raise AgentError(
                    "NOT_FOUND", f"purchase order {po_number} not found", field="PurchaseOrderNo$"
                )
            header = self.row(s, svc, (*_HEADER_FIELDS, f"{self.cfg_udf}$"))
        finally:
            self.drop(svc)
        return self._po(s, po_number, header, include_lines=True)

    def _scan_pos(
        self,
        s: BOISession,
        keep: Callable[[dict[str, Any]], bool],
        include_lines: bool,
        limit: int | None = None,
    ) -> list[PurchaseOrder]:
        self.context(s, "P/O")
        svc = self.new(s, "PO_PurchaseOrder_svc")
        try:
            rows = self.scan(s, svc, ("PurchaseOrderNo$", *_HEADER_FIELDS, f"{self.cfg_udf}$"), keep, limit)
        finally:
            self.drop(svc)
        return [self._po(s, r["PurchaseOrderNo"], r, include_lines) for r in rows]

    def scan_external_id(self, s: BOISession, external_id: str) -> PurchaseOrder | None:
        # No index on a UDF: scan the header file (ODBC "WHERE UDF_ASANA_GID = ?" would be faster, §9).
        found = self._scan_pos(s, lambda r: r.get(self.cfg_udf) == external_id, include_lines=True, limit=1)
        return found[0] if found else None

    def updated_on_or_after(self, s: BOISession, day: date, include_lines: bool) -> list[PurchaseOrder]:
        floor = day.strftime("%Y%m%d")
        return self._scan_pos(s, lambda r: str(r["DateUpdated"]).replace("-", "") >= floor, include_lines)
