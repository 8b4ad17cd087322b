"""``selftest``: prove on the customer's server that every BOI object, method and column the agent uses
exists, without writing anything (issue 19).

Run it as ``python -m sage100_agent selftest --config agent.toml`` or ``GET /v1/selftest``
(scope ``selftest`` or ``admin``); ``connector check`` calls the latter. For the BOI backend it:

1. opens each business object the agent uses under its module and task (ref §1.4);
2. looks every method it calls up in the object's dispatch name table (``_oleobj_.GetIDsOfNames``) —
   a lookup, not a call, so nothing is written and no PO number is consumed. Method names are settings
   (``[boi.methods]``, defaults in ``boi_names.py``);
3. reads every column it reads or writes with ``nGetValue`` on the first record of the matching
   ``_svc`` object (a return code of 0 = the column is not in this install's file layout, e.g. the
   ``UDF_ASANA_GID`` UDF not yet added) — for ``$`` columns through a by-reference VARIANT (``byref.py``);
4. reads one vendor and one GL account, and the next PO number from ``PO_Options`` (column
   ``boi.next_number_column``, [U]) — read, never consumed: the next-number method is only looked up.

The result is a table of what is missing and what to configure (``SelftestReport.table``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .boi_names import METHODS, OBJECT_METHODS, OBJECT_MODULE
from .boi_ops import _GL_FIELDS, _HEADER_FIELDS, _LINE_FIELDS, _VENDOR_FIELDS
from .byref import out_for

if TYPE_CHECKING:
    from .boi import BOISession
    from .boi_write import BOIOps

#: columns the write sets (checked on the _svc object over the same file)
_HEADER_WRITE = ("ShipToCode$", "WarehouseCode$", "TermsCode$", "RequiredExpireDate$")
_LINE_WRITE = ("UnitOfMeasure$",)


@dataclass
class Check:
    area: str  # business object, or "read"
    item: str  # "method nFind", "column VendorName$", "vendor", ...
    status: str  # "ok" | "MISSING" | "FAILED" | "unverified"
    detail: str = ""
    fix: str = ""  # what to configure when not ok

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "unverified")


@dataclass
class SelftestReport:
    backend: str
    company: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, area: str, item: str, status: str, detail: str = "", fix: str = "") -> None:
        self.checks.append(Check(area, item, status, detail, fix))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "backend": self.backend,
            "company": self.company,
            "checks": [asdict(c) for c in self.checks],
            "problems": [asdict(c) for c in self.checks if c.status != "ok"],
        }

    def table(self, verbose: bool = False) -> str:
        """A plain-text table, then what to configure. Method and column checks of one object that share
        a status and detail are folded into one line (``verbose`` lists each)."""
        rows: list[list[str]] = [["OBJECT", "CHECK", "STATUS", "DETAIL"]]
        groups: dict[tuple[str, str, str, str], list[str]] = {}
        for c in self.checks:
            kind, _, name = c.item.partition(" ")
            if verbose or kind not in ("method", "column") or c.status not in ("ok", "unverified"):
                rows.append([c.area, c.item, c.status, c.detail])
                continue
            key = (c.area, kind, c.status, c.detail)
            if key not in groups:
                groups[key] = []
                rows.append([c.area, f"@{len(groups)}", c.status, c.detail])
            groups[key].append(name)
        for index, ((_, kind, _, detail), names) in enumerate(groups.items(), start=1):
            row = next(r for r in rows if r[1] == f"@{index}")
            row[1] = f"{len(names)} {kind}s"
            row[3] = ", ".join(names) + (f" ({detail})" if detail else "")
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        verdict = "OK" if self.ok else "PROBLEMS FOUND"
        lines = [f"selftest: backend {self.backend}, company {self.company}: {verdict}"]
        lines += ["  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows]
        fixes = [c for c in self.checks if c.status != "ok" and c.fix]
        if fixes:
            lines += ["", "To configure:"] + [f"- {c.area} {c.item}: {c.fix}" for c in fixes]
        return "\n".join(line.rstrip() for line in lines)


def has_member(obj: Any, name: str) -> bool:
    """Look ``name`` up in the object's dispatch name table without calling it.

    pywin32 objects (late- or early-bound) expose their ``PyIDispatch`` as ``_oleobj_``;
    ``GetIDsOfNames`` raises ``com_error`` (DISP_E_UNKNOWNNAME) for a name the object does not have.
    """
    dispatch = getattr(obj, "_oleobj_", None)
    if dispatch is None:
        return hasattr(obj, name)
    try:
        dispatch.GetIDsOfNames(name)
    except Exception:  # noqa: BLE001 — pywintypes.com_error: unknown name
        return False
    return True


def _methods(report: SelftestReport, area: str, obj: Any, ops: BOIOps, logical: tuple[str, ...]) -> None:
    for key in logical:
        name = ops.m(key)
        if has_member(obj, name):
            report.add(area, f"method {name}", "ok")
            continue
        evidence = METHODS[key][1]
        fix = (
            f'set [boi.methods] {key} = "<name in the Object Reference>" '
            f"(default {METHODS[key][0]}: {evidence})"
        )
        report.add(area, f"method {name}", "MISSING", "not in the dispatch name table", fix)


def _columns(
    report: SelftestReport, s: BOISession, ops: BOIOps, area: str, svc: Any, columns: tuple[str, ...]
) -> dict[str, Any]:
    """Read ``columns`` of the first record; return the values that came back."""
    code, _ = s.call(svc, ops.m("move_first"))
    if int(getattr(svc, ops.m("eof"), 1) or 0):
        for column in columns:
            report.add(area, f"column {column}", "unverified", "the file has no record to read it from")
        return {}
    values: dict[str, Any] = {}
    for column in columns:
        rc, outs = s.call(svc, ops.m("get_value"), column, out_for(column))
        if rc == 1:
            values[column] = outs[0] if outs else ""
            report.add(area, f"column {column}", "ok")
            continue
        message = str(getattr(svc, "sLastErrorMsg", "") or "")
        fix = (
            f"add the UDF {column.rstrip('$')} to the PO header "
            "(Custom Office > UDF Maintenance; drain the agent first)"
            if column.startswith("UDF_")
            else "check the Sage version's file layout; adjust fields.py or [field_lengths]"
        )
        report.add(area, f"column {column}", "MISSING", message or f"nGetValue returned {rc}", fix)
    strings = [v for c, v in values.items() if c.endswith("$")]
    if strings and not any(str(v).strip() for v in strings):
        report.add(
            area,
            "ByRef outputs",
            "FAILED",
            "every string column read back empty: the output arguments are being lost",
            'set [boi] byref = "variant" (by-reference VARIANTs, docs §7)',
        )
    return values


def run_boi_selftest(s: BOISession, ops: BOIOps, company: str, udf: str, next_column: str) -> SelftestReport:
    """Everything above on one pooled session; drops every object it opened."""
    report = SelftestReport("boi", company)
    _methods(report, "SY_Session", s.ss, ops, OBJECT_METHODS["SY_Session"])
    header_cols = ("PurchaseOrderNo$", *_HEADER_FIELDS, f"{udf}$", *_HEADER_WRITE)
    columns = {
        "AP_Vendor_svc": _VENDOR_FIELDS,
        "GL_Account_svc": _GL_FIELDS,
        "PO_PurchaseOrder_svc": header_cols,
        "PO_PurchaseOrderDetail_svc": (*_LINE_FIELDS, *_LINE_WRITE),
    }
    found: dict[str, dict[str, Any]] = {}
    for name, module in OBJECT_MODULE.items():
        try:
            ops.context(s, module)
            obj = ops.new(s, name)
        except Exception as exc:  # noqa: BLE001 — an object that cannot be opened is the finding
            task = "the module's task"
            report.add(name, "open", "FAILED", str(exc), f"give the Sage user rights to {module} ({task})")
            continue
        lines = None
        try:
            report.add(name, "open", "ok", f"module {module}")
            _methods(report, name, obj, ops, OBJECT_METHODS[name])
            if name in columns:
                found[name] = _columns(report, s, ops, name, obj, columns[name])
            if name == "PO_PurchaseOrder_bus":
                if has_member(obj, "oLines"):
                    lines = obj.oLines
                    _methods(report, f"{name}.oLines", lines, ops, OBJECT_METHODS[f"{name}.oLines"])
                else:
                    report.add(name, "child oLines", "MISSING", "no line object", "check the Sage version")
        finally:
            ops.drop(lines, obj)
    vendor = found.get("AP_Vendor_svc") or {}
    if vendor:
        vid = f"{vendor.get('APDivisionNo$', '')}-{vendor.get('VendorNo$', '')}"
        report.add("read", "vendor", "ok", f"{vid} {vendor.get('VendorName$', '')}".strip())
    account = found.get("GL_Account_svc") or {}
    if account:
        report.add(
            "read", "GL account", "ok", f"{account.get('Account$', '')} status {account.get('Status$', '')}"
        )
    _next_number(report, s, ops, next_column)
    return report


def _next_number(report: SelftestReport, s: BOISession, ops: BOIOps, column: str) -> None:
    """The next PO number from PO_Options, read only ([U]: column name); the method is never called."""
    method = ops.m("next_po_number")
    try:
        ops.context(s, "P/O")
        options = ops.new(s, "PO_Options_svc")
    except Exception as exc:  # noqa: BLE001
        report.add("read", "next PO number", "unverified", f"PO_Options_svc: {exc}", _NEXT_FIX.format(method))
        return
    try:
        s.call(options, ops.m("move_first"))
        rc, outs = s.call(options, ops.m("get_value"), column, out_for(column))
        value = str(outs[0] if outs else "").strip()
        if rc == 1 and value:
            report.add(
                "read", "next PO number", "ok", f"{value} (read from PO_Options.{column}, not consumed)"
            )
        else:
            report.add(
                "read",
                "next PO number",
                "unverified",
                f"PO_Options.{column} unreadable",
                _NEXT_FIX.format(method),
            )
    finally:
        ops.drop(options)


_NEXT_FIX = (
    "set [boi] next_number_column to the PO_Options column, or confirm {0} with a dry run on a test "
    "company (a dry run calls it and may consume a number)"
)
