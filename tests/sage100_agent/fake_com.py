"""A fake ProvideX COM server with the two faces pywin32 can show (issue 19 item 1).

* ``typed`` — type information exists (makepy / early binding): a method with ByRef arguments returns a
  tuple ``(rc, out…)`` and leaves its arguments alone.
* ``late`` — late-bound dynamic dispatch, as ProvideX usually is: a method returns only its return code,
  fills **only** by-reference VARIANT arguments (``varianttype & VT_BYREF``, pywin32's
  ``win32com.client.VARIANT`` or the agent's stand-in) coerced to their declared type, and ignores plain
  arguments, so a caller passing ``""`` gets nothing back (pywin32's variant.html, DumbDispatch example).

Return codes are 1 / 0 / -1 (``nSetKey`` 2 for a new record); ``sLastErrorMsg`` is set on the object that
failed. Every call is logged as ``(object, method, args)`` so tests can assert the call order. Every
object answers ``_oleobj_.GetIDsOfNames(name)`` like a dispatch's name table; ``missing`` removes a
method (``{("PO_PurchaseOrder_bus", "nGetNextPurchaseOrderNo")}``) from an object, as an install whose
BOI lacks it would.
"""

from __future__ import annotations

from typing import Any

from sage100_agent.byref import VT_BSTR, VT_BYREF, VT_I4, VT_R8

PERSONALITIES = ("typed", "late")
DISP_E_UNKNOWNNAME = -2147352570


class FakeComError(Exception):
    """Stands in for pywintypes.com_error."""


def _coerce(varianttype: int, value: Any) -> Any:
    base = varianttype & ~VT_BYREF
    if base == VT_BSTR:
        return "" if value is None else str(value)
    if base == VT_R8:
        return float(value or 0)
    if base == VT_I4:
        return int(float(value or 0))
    return value


class FakeDispatch:
    """The ``_oleobj_`` of a fake object: only the name lookup the selftest uses."""

    def __init__(self, obj: FakeObject) -> None:
        self._obj = obj

    def GetIDsOfNames(self, name: str) -> int:
        if name in self._obj.members():
            return 1000 + sorted(self._obj.members()).index(name)
        raise FakeComError(DISP_E_UNKNOWNNAME, "Unknown name.", None, None)


class FakeSage:
    def __init__(self, personality: str = "typed") -> None:
        if personality not in PERSONALITIES:
            raise ValueError(personality)
        self.personality = personality
        self.missing: set[tuple[str, str]] = set()  # (object, method) this install lacks
        self.missing_columns: set[tuple[str, str]] = set()  # (object, column) this install lacks
        self.next_po_method = "nGetNextPurchaseOrderNo"  # what this "install" calls the method
        self.log: list[tuple[str, str, tuple[Any, ...]]] = []
        self.vendors = {
            ("00", "0000001"): {
                "VendorName$": "ABC Concrete Supply",
                "VendorStatus$": "A",
                "TermsCode$": "01",
                "AccountKey$": "00000002K",
                "DateUpdated$": "20250301",
                "TimeUpdated$": "9.25",
            },
            ("00", "0000099"): {
                "VendorName$": "Old Quarry",
                "VendorStatus$": "I",
                "TermsCode$": "",
                "AccountKey$": "",
                "DateUpdated$": "",
                "TimeUpdated$": "",
            },
        }
        self.accounts = {
            "00000004K": {
                "Account$": "5000-01-00",
                "AccountDesc$": "Job Cost - Materials",
                "Status$": "A",
                "MainAccountCode$": "5000",
                "AccountType$": "E",
            },
            "00000007K": {
                "Account$": "6900-00-00",
                "AccountDesc$": "Small Tools",
                "Status$": "I",
                "MainAccountCode$": "6900",
                "AccountType$": "E",
            },
        }
        self.pos: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self.next_po = 100
        self.clock = ("20250301", "14.50833")
        # (object name, method, first arg or None) -> (rc, message)   one-shot failures
        self.fail: dict[tuple[str, str, Any], tuple[int, str]] = {}
        self.raise_on: tuple[str, str] | None = None  # (object, method): raise FakeComError once
        self.sessions_created = 0
        self.password = "pw"

    def record(self, obj: str, method: str, args: tuple[Any, ...]) -> tuple[int, str] | None:
        self.log.append((obj, method, args))
        if self.raise_on == (obj, method):
            self.raise_on = None
            raise FakeComError(f"(-2147352567, 'Exception occurred.') in {obj}.{method}")
        for key in ((obj, method, args[0] if args else None), (obj, method, None)):
            if key in self.fail:
                return self.fail.pop(key)
        return None

    def calls(self, obj: str | None = None) -> list[tuple[str, Any]]:
        return [(m, a[0] if a else None) for o, m, a in self.log if obj is None or o == obj]

    def script(self) -> FakeScript:
        return FakeScript(self)


class FakeObject:
    name = "object"
    _MEMBERS: tuple[str, ...] = ("DropObject", "sLastErrorMsg")

    def __init__(self, sage: FakeSage) -> None:
        self.sage = sage
        self.sLastErrorMsg = ""

    def members(self) -> set[str]:
        names = set(FakeObject._MEMBERS) | set(type(self)._MEMBERS)
        if "nGetNextPurchaseOrderNo" in names:
            names = (names - {"nGetNextPurchaseOrderNo"}) | {self.sage.next_po_method}
        return {n for n in names if (self.name, n) not in self.sage.missing}

    def __getattribute__(self, attr: str) -> Any:
        if attr[:1] in "nsoD" and attr[1:2].isupper():  # a BOI member (nX, sX, oX, DropObject)
            sage = object.__getattribute__(self, "sage")
            if attr not in object.__getattribute__(self, "members")():
                raise AttributeError(f"<unknown>.{attr}")  # pywin32 dynamic: no such member
            if attr == sage.next_po_method and attr != "nGetNextPurchaseOrderNo":
                return object.__getattribute__(self, "nGetNextPurchaseOrderNo")
        return object.__getattribute__(self, attr)

    @property
    def _oleobj_(self) -> FakeDispatch:
        return FakeDispatch(self)

    def _out(self, rc: Any, byref: Any, value: Any) -> Any:
        """Hand an output back the way this personality's COM layer would."""
        if self.sage.personality == "typed":
            return (rc, value)
        if getattr(byref, "varianttype", 0) & VT_BYREF:
            byref.value = _coerce(byref.varianttype, value)
        return rc  # a plain argument is passed by value: the output is lost

    def _rc(self, method: str, args: tuple[Any, ...], default: Any = 1) -> Any:
        failure = self.sage.record(self.name, method, args)
        if failure is not None:
            self.sLastErrorMsg = failure[1]
            return failure[0]
        return default

    def DropObject(self) -> int:
        return self._rc("DropObject", ())


class FakeScript(FakeObject):
    name = "ProvideX.Script"
    _MEMBERS = ("Init", "NewObject")

    def Init(self, home: str) -> None:
        self._rc("Init", (home,))

    def NewObject(self, name: str, session: Any = None) -> Any:
        self._rc("NewObject", (name,))
        if name == "SY_Session":
            self.sage.sessions_created += 1
            return FakeSession(self.sage)
        if name == "PO_PurchaseOrder_bus":
            return FakePOBus(self.sage)
        return FakeSvc(self.sage, name)


class FakeSession(FakeObject):
    name = "SY_Session"
    sCompanyCode = "ABC"
    _MEMBERS = (
        "nSetUser",
        "nSetCompany",
        "nSetDate",
        "nSetModule",
        "nLookupTask",
        "nSetProgram",
        "nCleanup",
        "sCompanyCode",
    )

    def nSetUser(self, user: str, password: str) -> int:
        ok = self._rc("nSetUser", (user,))
        if ok == 1 and password != self.sage.password:
            self.sLastErrorMsg = "Invalid user logon or password."
            return 0
        return ok

    def __getattr__(self, method: str) -> Any:  # the other session members in _MEMBERS
        if method not in self.members():
            raise AttributeError(f"<unknown>.{method}")
        return lambda *args: self._rc(method, args, 42 if method == "nLookupTask" else 1)


class FakeSvc(FakeObject):
    """Read-only service objects over the fake tables."""

    _MEMBERS = (
        "nSetKeyValue",
        "nSetIndex",
        "nSetBrowseFilter",
        "nFind",
        "nGetValue",
        "nMoveFirst",
        "nMoveNext",
        "nEOF",
    )

    def __init__(self, sage: FakeSage, name: str) -> None:
        super().__init__(sage)
        self.name = name
        self.keys: dict[str, str] = {}
        self.current: dict[str, Any] | None = None
        self.rows: list[dict[str, Any]] = []
        self.pos = 0
        self.browse = ""

    def _table(self) -> list[dict[str, Any]]:
        s = self.sage
        if self.name == "AP_Vendor_svc":
            return [{"APDivisionNo$": d, "VendorNo$": v, **r} for (d, v), r in sorted(s.vendors.items())]
        if self.name == "GL_Account_svc":
            return [{"AccountKey$": k, **r} for k, r in sorted(s.accounts.items())]
        if self.name == "PO_PurchaseOrder_svc":
            return [dict(r) for _, r in sorted(s.pos.items())]
        if self.name == "PO_Options_svc":  # one record; the next number is read, not consumed
            return [{"ModuleCode$": "P/O", "NextPurchaseOrderNo$": f"{s.next_po:07d}"}]
        if not self.browse:  # no browse filter: the whole detail file, in key order
            return [dict(r) for _, rows in sorted(s.lines.items()) for r in rows]
        return [dict(r) for r in s.lines.get(self.browse, [])]

    def nSetKeyValue(self, column: str, value: str) -> int:
        self.keys[column] = value
        return self._rc("nSetKeyValue", (column, value))

    def nSetIndex(self, index: str) -> int:
        return self._rc("nSetIndex", (index,))

    def nSetBrowseFilter(self, prefix: str) -> int:
        self.browse = prefix
        return self._rc("nSetBrowseFilter", (prefix,))

    def nFind(self) -> int:
        rc = self._rc("nFind", ())
        matches = [r for r in self._table() if all(r.get(c) == v for c, v in self.keys.items())]
        self.current = matches[0] if matches and rc == 1 else None
        return 1 if self.current else 0

    def nGetValue(self, column: str, byref: Any) -> Any:
        self._rc("nGetValue", (column,))
        row = self.current or {}
        if (self.name, column) in self.sage.missing_columns:
            self.sLastErrorMsg = f"Column {column} is not in the file."
            return self._out(0, byref, "")
        return self._out(1, byref, row.get(column, ""))

    def nMoveFirst(self) -> int:
        self.rows, self.pos = self._table(), 0
        self.current = self.rows[0] if self.rows else None
        return self._rc("nMoveFirst", ())

    def nMoveNext(self) -> int:
        self.pos += 1
        self.current = self.rows[self.pos] if self.pos < len(self.rows) else None
        return self._rc("nMoveNext", ())

    @property
    def nEOF(self) -> int:
        return 0 if self.current is not None else 1


class FakeLines(FakeObject):
    name = "oLines"
    _MEMBERS = ("nAddLine", "nSetValue", "nWrite")

    def __init__(self, sage: FakeSage, bus: FakePOBus) -> None:
        super().__init__(sage)
        self.bus = bus
        self.current: dict[str, Any] | None = None

    def nAddLine(self) -> int:
        self.current = {}
        return self._rc("nAddLine", ())

    def nSetValue(self, column: str, value: Any) -> int:
        rc = self._rc("nSetValue", (column, value))
        if rc in (1, -1):
            self.current[column] = value
        return rc

    def nWrite(self) -> int:
        rc = self._rc("nWrite", ())
        if rc in (1, -1):
            self.bus.pending_lines.append(self.current)
        return rc


class FakePOBus(FakeObject):
    name = "PO_PurchaseOrder_bus"
    _MEMBERS = (
        "nGetNextPurchaseOrderNo",
        "nSetKeyValue",
        "nSetKey",
        "nSetValue",
        "nWrite",
        "nClear",
        "oLines",
    )

    def __init__(self, sage: FakeSage) -> None:
        super().__init__(sage)
        self.header: dict[str, Any] = {}
        self.pending_lines: list[dict[str, Any]] = []
        self.oLines = FakeLines(sage, self)
        self.number = ""

    def nGetNextPurchaseOrderNo(self, byref: Any) -> Any:
        rc = self._rc(self.sage.next_po_method, ())
        number = f"{self.sage.next_po:07d}"
        self.sage.next_po += 1  # advances even if the write later fails (§2.1 gap risk)
        return self._out(rc, byref, number)

    def nSetKeyValue(self, column: str, value: str) -> int:
        self.number = value
        return self._rc("nSetKeyValue", (column, value))

    def nSetKey(self) -> int:
        return self._rc("nSetKey", (), 2)

    def nSetValue(self, column: str, value: Any) -> int:
        rc = self._rc("nSetValue", (column, value))
        if column == "VendorNo$" and rc == 1:
            vendor = self.sage.vendors.get((self.header.get("APDivisionNo$"), value))
            if vendor is None:
                self.sLastErrorMsg = "Vendor number is not on file."
                return 0
        if rc in (1, -1):
            self.header[column] = value
        return rc

    def nWrite(self) -> int:
        rc = self._rc("nWrite", ())
        if rc in (1, -1):
            date_updated, time_updated = self.sage.clock
            self.sage.pos[self.number] = {
                "PurchaseOrderNo$": self.number,
                "OrderStatus$": "N",
                "OrderType$": "S",
                "OnHold$": "N",
                "DateUpdated$": date_updated,
                "TimeUpdated$": time_updated,
                "Comment$": "",
                **self.header,
            }
            self.sage.lines[self.number] = [
                {
                    "LineKey$": f"{i:06d}",
                    "ItemType$": "4" if ln["ItemCode$"] == "/C" else "5",
                    "ExtensionAmt": round(ln.get("QuantityOrdered", 0) * ln.get("UnitCost", 0), 2),
                    **ln,
                }
                for i, ln in enumerate(self.pending_lines, start=1)
            ]
        return rc

    def nClear(self) -> int:
        self.header, self.pending_lines = {}, []
        return self._rc("nClear", ())
