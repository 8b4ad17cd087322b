"""A fake ProvideX COM server that behaves like pywin32 late binding over BOI.

Methods with ByRef arguments return tuples ``(rc, out…)`` as pywin32 does; return codes are 1 / 0 / -1
(``nSetKey`` 2 for a new record); ``sLastErrorMsg`` is set on the object that failed. Every call is
logged as ``(object, method, args)`` so tests can assert the call order.
"""

from __future__ import annotations

from typing import Any


class FakeComError(Exception):
    """Stands in for pywintypes.com_error."""


class FakeSage:
    def __init__(self) -> None:
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

    def __init__(self, sage: FakeSage) -> None:
        self.sage = sage
        self.sLastErrorMsg = ""

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

    def nSetUser(self, user: str, password: str) -> int:
        ok = self._rc("nSetUser", (user,))
        if ok == 1 and password != self.sage.password:
            self.sLastErrorMsg = "Invalid user logon or password."
            return 0
        return ok

    def __getattr__(self, method: str) -> Any:
        if method.startswith("n"):
            return lambda *args: self._rc(method, args, 42 if method == "nLookupTask" else 1)
        raise AttributeError(method)


class FakeSvc(FakeObject):
    """Read-only service objects over the fake tables."""

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

    def nGetValue(self, column: str, _byref: Any) -> tuple[int, Any]:
        self._rc("nGetValue", (column,))
        return (1, (self.current or {}).get(column, ""))

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

    def __init__(self, sage: FakeSage) -> None:
        super().__init__(sage)
        self.header: dict[str, Any] = {}
        self.pending_lines: list[dict[str, Any]] = []
        self.oLines = FakeLines(sage, self)
        self.number = ""

    def nGetNextPurchaseOrderNo(self, _byref: str) -> tuple[int, str]:
        rc = self._rc("nGetNextPurchaseOrderNo", ())
        number = f"{self.sage.next_po:07d}"
        self.sage.next_po += 1  # advances even if the write later fails (§2.1 gap risk)
        return (rc, number)

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
