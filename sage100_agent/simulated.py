"""Simulated Sage 100 company in SQLite: the same contract and checks as BOI, no Windows needed.

Used by the agent's tests, the connector's sandbox and demos. Besides the :class:`~.backend.Backend`
methods it offers test hooks: :meth:`SimulatedBackend.seed_demo`, :meth:`inject_lock` (record locks,
by vendor or on the PO-number sequence), :meth:`inject_unknown_outcome` (the write commits, then the
answer is lost), :meth:`touch_po` (a Sage user edits a PO) and :meth:`delete_po` (a PO is purged).
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import date
from decimal import Decimal
from typing import Any

from .backend import Backend, company_write_lock
from .fields import sage_to_utc
from .model import (
    AgentError,
    CreateResult,
    GLAccount,
    JobRef,
    Notice,
    POLine,
    PurchaseOrder,
    PurchaseOrderRequest,
    UnknownOutcome,
    Vendor,
)
from .selftest import SelftestReport
from .simulated_store import _ITEM_TYPES, SimulatedStore


class SimulatedBackend(SimulatedStore, Backend):
    """SQLite-backed company. ``clock`` returns an aware "now" (injectable for tests); ``tz`` is the
    simulated Sage server's zone (``None`` = OS local), used for DateUpdated/TimeUpdated like BOI."""

    name = "simulated"

    # --- reads ----------------------------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        self._db().execute("SELECT 1 FROM vendors LIMIT 1").fetchall()
        return {"backend": self.name, "company": self.company, "boi": "simulated", "sage_home": None}

    def _vendor(self, row: sqlite3.Row) -> Vendor:
        updated = sage_to_utc(row["date_updated"], row["time_updated"], self.tz)
        return Vendor(
            division=row["division"],
            vendor_no=row["vendor_no"],
            name=row["name"],
            status=row["status"],
            terms_code=row["terms_code"] or "",
            default_account_key=row["account_key"] or "",
            updated_at=updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else None,
        )

    def search_vendors(self, q: str, division: str | None, after: str | None, limit: int) -> list[Vendor]:
        rows = (
            self._db()
            .execute(
                "SELECT * FROM vendors WHERE (?='' OR instr(upper(vendor_no||' '||name), upper(?))>0) "
                "AND (? IS NULL OR division=?) AND division||'-'||vendor_no > ? "
                "ORDER BY division, vendor_no LIMIT ?",
                (q, q, division, division, after or "", limit),
            )
            .fetchall()
        )
        return [self._vendor(r) for r in rows]

    def get_vendor(self, division: str, vendor_no: str) -> Vendor:
        row = (
            self._db()
            .execute("SELECT * FROM vendors WHERE division=? AND vendor_no=?", (division, vendor_no))
            .fetchone()
        )
        if row is None:
            raise AgentError("NOT_FOUND", f"vendor {division}-{vendor_no} not found", field="VendorNo$")
        return self._vendor(row)

    def _account(self, row: sqlite3.Row) -> GLAccount:
        return GLAccount(**dict(row))

    def list_gl_accounts(self, q: str, status: str | None, after: str | None, limit: int) -> list[GLAccount]:
        rows = (
            self._db()
            .execute(
                "SELECT * FROM gl_accounts "
                "WHERE (?='' OR instr(upper(account||' '||description), upper(?))>0) "
                "AND (? IS NULL OR status=?) AND account > ? ORDER BY account LIMIT ?",
                (q, q, status, status, after or "", limit),
            )
            .fetchall()
        )
        return [self._account(r) for r in rows]

    def get_gl_account(self, account_or_key: str) -> GLAccount:
        row = (
            self._db()
            .execute(
                "SELECT * FROM gl_accounts WHERE account=? OR account_key=?", (account_or_key, account_or_key)
            )
            .fetchone()
        )
        if row is None:
            raise AgentError("NOT_FOUND", f"GL account {account_or_key} not found", field="PurchasesAcctKey$")
        return self._account(row)

    def _po(self, row: sqlite3.Row, include_lines: bool = True) -> PurchaseOrder:
        db = self._db()
        header = json.loads(row["header_json"] or "{}")
        lines: list[POLine] = []
        if include_lines:
            for ln in db.execute(
                "SELECT l.*, g.account FROM po_lines l LEFT JOIN gl_accounts g "
                "ON g.account_key = l.account_key WHERE po_number=? ORDER BY line_key",
                (row["po_number"],),
            ):
                job = JobRef(**json.loads(ln["job_json"])) if ln["job_json"] else None
                lines.append(
                    POLine(
                        line_key=ln["line_key"],
                        item_code=ln["item_code"],
                        item_type=ln["item_type"],
                        description=ln["description"],
                        quantity=Decimal(ln["quantity"]),
                        unit_cost=Decimal(ln["unit_cost"]),
                        extension_amt=Decimal(ln["extension_amt"]),
                        gl_account_key=ln["account_key"] or "",
                        gl_account=ln["account"] or "",
                        warehouse_code=ln["warehouse_code"] or "",
                        comment_text=ln["comment_text"] or "",
                        job=job,
                    )
                )
        vendor = db.execute(
            "SELECT name FROM vendors WHERE division=? AND vendor_no=?", (row["division"], row["vendor_no"])
        ).fetchone()
        updated = sage_to_utc(row["date_updated"], row["time_updated"], self.tz)
        return PurchaseOrder(
            po_number=row["po_number"],
            division=row["division"],
            vendor_no=row["vendor_no"],
            po_date=row["po_date"],
            status=row["status"],
            order_type=row["order_type"],
            external_id=row["external_id"],
            lines=lines,
            updated_at=updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else None,
            date_updated=row["date_updated"],
            time_updated=row["time_updated"],
            vendor_name=vendor["name"] if vendor else "",
            comment=row["comment"],
            on_hold=bool(row["on_hold"]),
            udf=header.get("udf", {}),
            requisitioner=header.get("requisitioner", ""),
            confirm_to=header.get("confirm_to", ""),
        )

    def get_purchase_order(self, po_number: str) -> PurchaseOrder:
        row = self._db().execute("SELECT * FROM pos WHERE po_number=?", (po_number,)).fetchone()
        if row is None:
            raise AgentError("NOT_FOUND", f"purchase order {po_number} not found", field="PurchaseOrderNo$")
        return self._po(row)

    def find_by_external_id(self, external_id: str) -> PurchaseOrder | None:
        row = (
            self._db()
            .execute("SELECT * FROM pos WHERE external_id=? ORDER BY po_number LIMIT 1", (external_id,))
            .fetchone()
        )
        return self._po(row) if row is not None else None

    def updated_on_or_after(self, day: date, include_lines: bool) -> list[PurchaseOrder]:
        rows = self._db().execute("SELECT * FROM pos WHERE date_updated >= ?", (day.strftime("%Y%m%d"),))
        return [self._po(r, include_lines) for r in rows.fetchall()]

    def selftest(self) -> SelftestReport:
        """The simulated company has no COM objects: report the three reads selftest makes on BOI."""
        report = SelftestReport(self.name, self.company)
        report.add("simulated", "COM objects and methods", "ok", "none: the simulated backend has no BOI")
        db = self._db()
        vendor = db.execute("SELECT * FROM vendors ORDER BY division, vendor_no LIMIT 1").fetchone()
        account = db.execute("SELECT * FROM gl_accounts ORDER BY account LIMIT 1").fetchone()
        number = db.execute("SELECT value FROM counters WHERE name='po_number'").fetchone()
        for item, row, text in (
            ("vendor", vendor, lambda r: f"{r['division']}-{r['vendor_no']} {r['name']}"),
            ("GL account", account, lambda r: f"{r['account']} status {r['status']}"),
            ("next PO number", number, lambda r: f"{int(r[0]):07d} (read, not consumed)"),
        ):
            if row is None:
                report.add("read", item, "FAILED", "nothing on file", "seed the simulated company")
            else:
                report.add("read", item, "ok", text(row))
        return report

    def release_sessions(self) -> int:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        return 0

    # --- the write ------------------------------------------------------------------------------------

    def _resolve_account(self, line_index: int, key: str, account: str, fallback: str) -> tuple[str, str]:
        step = f"line[{line_index}]"
        db = self._db()
        if key:
            row = db.execute("SELECT * FROM gl_accounts WHERE account_key=?", (key,)).fetchone()
        elif account:
            row = db.execute("SELECT * FROM gl_accounts WHERE account=?", (account,)).fetchone()
        elif fallback:
            row = db.execute("SELECT * FROM gl_accounts WHERE account_key=?", (fallback,)).fetchone()
        else:
            raise AgentError(
                "SAGE_VALIDATION",
                "a GL account is required for this line",
                step=step,
                field="PurchasesAcctKey$",
                sage_message="Purchases account is required.",
            )
        if row is None:
            raise AgentError(
                "SAGE_VALIDATION",
                f"GL account {key or account or fallback} is not on file",
                step=step,
                field="PurchasesAcctKey$",
                sage_message="The account is not on file.",
            )
        if row["status"] != "A":  # §4: reject Status <> 'A'
            raise AgentError(
                "SAGE_VALIDATION",
                f"GL account {row['account']} is inactive",
                step=step,
                field="PurchasesAcctKey$",
                sage_message=f"Account {row['account']} is inactive.",
            )
        return row["account_key"], row["account"]

    def create_purchase_order(self, request: PurchaseOrderRequest, *, dry_run: bool = False) -> CreateResult:
        with company_write_lock(f"sim:{self.path}:{self.company}"):
            return self._create_locked(request, dry_run)

    def _create_locked(self, req: PurchaseOrderRequest, dry_run: bool) -> CreateResult:
        warnings: list[Notice] = []
        existing = self.find_by_external_id(req.external_id)
        if existing is not None:
            raise AgentError(
                "DUPLICATE_EXTERNAL_ID",
                f"purchase order {existing.po_number} already has this external id",
                step="header",
                field="UDF_ASANA_GID$",
                extra={"po_number": existing.po_number},
            )
        # Same order as BOI (§2.1): number first, then the vendor (which loads defaults), then lines.
        self._check_lock("po_sequence", "header", "PurchaseOrderNo$")
        vendor_id = f"{req.division}-{req.vendor_no}"
        self._check_lock(f"vendor:{vendor_id}", "header", "VendorNo$")
        try:
            vendor = self.get_vendor(req.division, req.vendor_no)
        except AgentError:
            raise AgentError(
                "SAGE_VALIDATION",
                f"vendor {vendor_id} is not on file",
                step="header",
                field="VendorNo$",
                sage_message="Vendor number is not on file.",
            ) from None
        if not vendor.active:
            raise AgentError(
                "SAGE_VALIDATION",
                f"vendor {vendor_id} is inactive",
                step="header",
                field="VendorNo$",
                sage_message=f"Vendor {vendor_id} is inactive.",
            )
        lines: list[POLine] = []
        for index, line in enumerate(req.lines, start=1):
            key, account = "", ""
            quantity, cost = line.quantity or Decimal(0), line.unit_cost or Decimal(0)
            if line.kind != "comment":
                fallback = vendor.default_account_key if line.kind in ("misc", "special") else ""
                if line.kind == "inventory" and not (line.gl_account or line.gl_account_key):
                    fallback = vendor.default_account_key  # stands in for the item's default account
                key, account = self._resolve_account(index, line.gl_account_key, line.gl_account, fallback)
            lines.append(
                POLine(
                    line_key=f"{index:06d}",
                    item_code=line.item_code,
                    item_type=_ITEM_TYPES[line.kind],
                    description=line.description,
                    quantity=quantity,
                    unit_cost=cost,
                    extension_amt=(quantity * cost).quantize(Decimal("0.01")),
                    gl_account_key=key,
                    gl_account=account,
                    warehouse_code=line.warehouse_code or req.warehouse_code,
                    comment_text=line.comment_text,
                    job=line.job,
                )
            )
        date_updated, time_updated = self._stamp()
        header = {
            "udf": dict(req.udf),
            "requisitioner": req.requisitioner,  # RequisitorName (§2.2)
            "confirm_to": req.confirm_to,  # ConfirmTo (§2.2)
            "ship_to_code": req.ship_to_code,
            "terms_code": req.terms_code or vendor.terms_code,
            "required_date": req.required_date.isoformat() if req.required_date else None,
        }
        with self._tx() as db:
            number = int(db.execute("SELECT value FROM counters WHERE name='po_number'").fetchone()[0])
            po_number = f"{number:07d}"
            if not dry_run:
                db.execute("UPDATE counters SET value=value+1 WHERE name='po_number'")
                db.execute(
                    "INSERT INTO pos VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        po_number,
                        req.division,
                        req.vendor_no,
                        req.po_date.isoformat(),
                        "N",
                        "S",
                        0,
                        req.external_id,
                        req.comment,
                        json.dumps(header),
                        date_updated,
                        time_updated,
                    ),
                )
                for ln in lines:
                    db.execute(
                        "INSERT INTO po_lines VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            po_number,
                            ln.line_key,
                            ln.item_code,
                            ln.item_type,
                            ln.description,
                            ln.comment_text,
                            str(ln.quantity),
                            str(ln.unit_cost),
                            str(ln.extension_amt),
                            ln.gl_account_key,
                            ln.warehouse_code,
                            json.dumps(ln.job.__dict__) if ln.job else None,
                        ),
                    )
            fault = None if dry_run else self._take_fault(db, "drop_answer", "create")
        if fault is not None:
            time.sleep(fault["delay"] or 0)
            raise UnknownOutcome("the write was sent but its outcome is unknown (simulated lost answer)")
        if dry_run:
            updated = sage_to_utc(date_updated, time_updated, self.tz)
            po = PurchaseOrder(
                po_number="",
                division=req.division,
                vendor_no=req.vendor_no,
                po_date=req.po_date.isoformat(),
                status="N",
                order_type="S",
                external_id=req.external_id,
                lines=lines,
                updated_at=updated.strftime("%Y-%m-%dT%H:%M:%SZ") if updated else None,
                vendor_name=vendor.name,
                comment=req.comment,
                udf=dict(req.udf),
                requisitioner=req.requisitioner,
                confirm_to=req.confirm_to,
            )
            return CreateResult(po=po, warnings=warnings, dry_run=True)
        return CreateResult(po=self.get_purchase_order(po_number), warnings=warnings)
