"""The BOI purchase-order write (reference sage100.md §2.1 create flow, §10 checklist items 4-8)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .boi_ops import BOIReads
from .byref import OUT_STR
from .fields import CONFIRM_TO_COLUMN, REQUISITIONER_COLUMN
from .model import (
    AgentError,
    CreateResult,
    Notice,
    PurchaseOrder,
    PurchaseOrderRequest,
    UnknownOutcome,
    Vendor,
)

if TYPE_CHECKING:
    from .boi import BOISession


class BOIOps(BOIReads):
    """Reads plus the create flow. Every return code is checked; -1 warnings are kept; on any failure
    before the commit ``nClear`` discards the order so no record lock is left behind."""

    # --- the write (§2.1) -----------------------------------------------------------------------------

    def _account_key(self, s: BOISession, index: int, account: str, key: str, step: str) -> str:
        """Formatted account -> AccountKey; refuse inactive/deleted accounts (§4)."""
        if not (account or key):
            return ""
        try:
            gl = self.get_gl_account(s, key or account)
        except AgentError:
            raise AgentError(
                "SAGE_VALIDATION",
                f"GL account {key or account} is not on file",
                step=step,
                field="PurchasesAcctKey$",
            ) from None
        if not gl.active:
            raise AgentError(
                "SAGE_VALIDATION",
                f"GL account {gl.account} is not active (status {gl.status})",
                step=step,
                field="PurchasesAcctKey$",
            )
        return gl.account_key

    def create(self, s: BOISession, req: PurchaseOrderRequest, dry_run: bool) -> CreateResult:
        notices: list[Notice] = []
        vendor = self.get_vendor_for_write(s, req)
        keys = [
            self._account_key(s, i, ln.gl_account, ln.gl_account_key, f"line[{i}]")
            for i, ln in enumerate(req.lines, start=1)
        ]
        self.context(s, "P/O")  # reset the P/O date/module/program right before the write
        po = self.new(s, "PO_PurchaseOrder_bus")
        lines_obj = None
        write_sent = False
        try:
            # [U] name inferred from nGetNextSalesOrderNo (§2.1, §11): a setting. ByRef no$ (§1.2).
            method = self.cfg.next_po_number_method
            outs = self.check(s, po, method, OUT_STR, step="header", field="PurchaseOrderNo$")
            number = str(outs[0] if outs else "").strip()
            if not number:  # an output lost in marshalling must never become an empty key
                raise AgentError(
                    "SAGE_VALIDATION",
                    f"{method} returned no number (run selftest: ByRef output or method name)",
                    step="header",
                    field="PurchaseOrderNo$",
                )
            self.check(
                s,
                po,
                self.m("set_key_value"),
                "PurchaseOrderNo$",
                number,
                step="header",
                field="PurchaseOrderNo$",
            )
            self.check(
                s, po, self.m("set_key"), step="header", field="PurchaseOrderNo$", ok=(2,)
            )  # 2 = new record
            header: list[tuple[str, Any]] = [
                ("PurchaseOrderDate$", req.po_date.strftime("%Y%m%d")),
                ("APDivisionNo$", req.division),
                ("VendorNo$", req.vendor_no),  # vendor FIRST: it loads the header defaults (§2.1 step 4)
            ]
            header += [
                (c, v)
                for c, v in (
                    ("ShipToCode$", req.ship_to_code),
                    ("WarehouseCode$", req.warehouse_code),
                    ("TermsCode$", req.terms_code),
                    ("Comment$", req.comment),
                    # people, after the vendor (its defaults must not overwrite them, §2.1 step 4)
                    (f"{REQUISITIONER_COLUMN}$", req.requisitioner),
                    (f"{CONFIRM_TO_COLUMN}$", req.confirm_to),
                )
                if v
            ]
            if req.required_date:
                header.append(("RequiredExpireDate$", req.required_date.strftime("%Y%m%d")))
            # UDFs (§2.6): a string UDF is "UDF_X$"; a numeric one has no "$" and takes a number (§1.2).
            header += [
                (name, float(value)) if name in req.numeric_udfs else (f"{name}$", value)
                for name, value in sorted(req.udf.items())
            ]  # incl. UDF_ASANA_GID
            for column, value in header:
                self.check(
                    s, po, self.m("set_value"), column, value, step="header", field=column, notices=notices
                )
            lines_obj = po.oLines
            for index, (line, key) in enumerate(zip(req.lines, keys, strict=True), start=1):
                step = f"line[{index}]"
                self.check(
                    s, lines_obj, self.m("add_line"), step=step, ok=(1, 2)
                )  # 2 (crgolden) or non-zero (UAF)
                # ItemCode FIRST: it loads the item defaults (§2.1 step 5)
                self.check(
                    s,
                    lines_obj,
                    self.m("set_value"),
                    "ItemCode$",
                    line.item_code,
                    step=step,
                    field="ItemCode$",
                    notices=notices,
                )
                values: list[tuple[str, Any]] = []
                if line.kind == "comment":
                    values.append(("CommentText$", line.comment_text))
                else:
                    values += [
                        ("QuantityOrdered", float(line.quantity or 0)),
                        ("UnitCost", float(line.unit_cost or 0)),
                    ]
                    values += [
                        (c, v)
                        for c, v in (
                            ("ItemCodeDesc$", line.description),
                            ("UnitOfMeasure$", line.unit_of_measure),
                            ("WarehouseCode$", line.warehouse_code),
                            ("PurchasesAcctKey$", key),
                        )
                        if v
                    ]
                    if line.job:
                        values += [
                            ("JobNo$", line.job.job_no),
                            ("CostCode$", line.job.cost_code),
                            ("CostType$", line.job.cost_type),
                        ]
                for column, value in values:
                    self.check(
                        s,
                        lines_obj,
                        self.m("set_value"),
                        column,
                        value,
                        step=step,
                        field=column,
                        notices=notices,
                    )
                self.check(s, lines_obj, self.m("write"), step=step, notices=notices)
            if dry_run:  # the full sequence, then discard (§9 dry run)
                s.call(po, self.m("clear"))
                preview = PurchaseOrder(
                    po_number=str(number),
                    division=req.division,
                    vendor_no=req.vendor_no,
                    po_date=req.po_date.isoformat(),
                    status="N",
                    order_type="S",
                    external_id=req.external_id,
                    lines=[],
                    updated_at=None,
                    vendor_name=vendor.name,
                    comment=req.comment,
                    udf=dict(req.udf),
                    requisitioner=req.requisitioner,
                    confirm_to=req.confirm_to,
                )
                return CreateResult(po=preview, warnings=notices, dry_run=True)
            write_sent = True
            self.check(s, po, self.m("write"), step="write", notices=notices)
        except AgentError:  # a checked return code: nothing was committed
            self._clear(s, po)
            raise
        except Exception as exc:
            s.broken = True  # COM exception: the session is recycled (§1.3)
            if not write_sent:
                self._clear(s, po)
                raise
            raise UnknownOutcome(
                "COM failure during nWrite; look the PO up by external id", sage_message=str(exc)
            ) from exc
        finally:
            self.drop(lines_obj, po)
        try:
            stored = self.get_purchase_order(s, str(number))
        except Exception as exc:
            s.broken = True
            raise UnknownOutcome(
                "the PO was written but could not be read back", sage_message=str(exc)
            ) from exc
        stored.vendor_name = vendor.name
        return CreateResult(po=stored, warnings=notices)

    def get_vendor_for_write(self, s: BOISession, req: PurchaseOrderRequest) -> Vendor:
        try:
            vendor = self.get_vendor(s, req.division, req.vendor_no)
        except AgentError as exc:
            if exc.code == "NOT_FOUND":
                raise AgentError(
                    "SAGE_VALIDATION",
                    f"vendor {req.division}-{req.vendor_no} is not on file",
                    step="header",
                    field="VendorNo$",
                ) from None
            raise
        if not vendor.active:
            raise AgentError(
                "SAGE_VALIDATION",
                f"vendor {req.division}-{req.vendor_no} is inactive",
                step="header",
                field="VendorNo$",
            )
        return vendor

    def _clear(self, s: BOISession, po: Any) -> None:
        """``nClear`` so no lock or half-built PO is left behind (§2.1 step 7, §10.5)."""
        s.broken = True  # assume the worst until nClear answers; reset below
        with contextlib.suppress(Exception):  # a failing nClear leaves the session marked broken (recycled)
            s.call(po, self.m("clear"))
            s.broken = False
