"""Every BOI method, object and column the agent calls, with its evidence (reference sage100.md tags).

Method names are settings (``[boi.methods]`` in agent.toml) whose defaults are the names public BOI code
uses. ``selftest`` (``selftest.py``) looks each one up through the dispatch's name table on the
customer's server, so a wrong name shows at install instead of on the first purchase order.
"""

from __future__ import annotations

#: logical name -> (default method name, evidence). [O]/[V]/[U] and S-keys as in the reference.
METHODS: dict[str, tuple[str, str]] = {
    "set_user": ("nSetUser", "[O] S1 S9 (ref §1.1)"),
    "set_company": ("nSetCompany", "[O] S1 S9 (ref §1.1)"),
    "set_date": ("nSetDate", "[O] S1 S2 (ref §1.1)"),
    "set_module": ("nSetModule", "[O] S1 S2 (ref §1.1)"),
    "lookup_task": ("nLookupTask", "[O] S1 S2 (ref §1.1)"),
    "set_program": ("nSetProgram", "[O] S1 S2 (ref §1.1)"),
    "set_key_value": ("nSetKeyValue", "[O] S1 S14 (ref §1.5)"),
    "set_key": ("nSetKey", "[O] S2 (ref §1.2)"),
    "find": ("nFind", "[O] S1 S14 (ref §1.2)"),
    "get_value": ("nGetValue", "[O] S1 S14 (ref §1.5)"),
    "set_value": ("nSetValue", "[V] S6 (ref §1.2)"),
    "move_first": ("nMoveFirst", "[O] S1 S2 (ref §1.2)"),
    "move_next": ("nMoveNext", "[O] S1 S2 (ref §1.2)"),
    "eof": ("nEOF", "[O] S1 S2 (ref §1.2)"),
    "set_browse_filter": ("nSetBrowseFilter", "[O] S2 (ref §1.5); on PO detail [U]"),
    "set_index": ("nSetIndex", "[U] (ref §4, index kACCOUNT)"),
    "add_line": ("nAddLine", "[O] S1 S2 (ref §2.1)"),
    "write": ("nWrite", "[V] S6 (ref §1.2)"),
    "clear": ("nClear", "[U] listed among BOI methods in S6 (ref §2.1 step 7)"),
    "next_po_number": (
        "nGetNextPurchaseOrderNo",
        "[U] NO public source: inferred from SO_SalesOrder_bus.nGetNextSalesOrderNo [O] S1 S9 S16 "
        "(ref §2.1, §11); read it from the Object Reference of the installed version",
    ),
}

#: business object -> the logical methods the agent calls on it
OBJECT_METHODS: dict[str, tuple[str, ...]] = {
    "SY_Session": ("set_user", "set_company", "set_date", "set_module", "lookup_task", "set_program"),
    "AP_Vendor_svc": ("set_key_value", "find", "get_value", "move_first", "move_next", "eof"),
    "GL_Account_svc": ("set_index", "set_key_value", "find", "get_value", "move_first", "move_next", "eof"),
    "PO_PurchaseOrder_svc": ("set_key_value", "find", "get_value", "move_first", "move_next", "eof"),
    "PO_PurchaseOrderDetail_svc": ("set_browse_filter", "get_value", "move_first", "move_next", "eof"),
    "PO_PurchaseOrder_bus": ("next_po_number", "set_key_value", "set_key", "set_value", "write", "clear"),
    "PO_PurchaseOrder_bus.oLines": ("add_line", "set_value", "write"),
}

#: the module/task each object is opened under (ref §1.4)
OBJECT_MODULE: dict[str, str] = {
    "AP_Vendor_svc": "A/P",
    "GL_Account_svc": "G/L",
    "PO_PurchaseOrder_svc": "P/O",
    "PO_PurchaseOrderDetail_svc": "P/O",
    "PO_PurchaseOrder_bus": "P/O",
}


def method_names(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """logical name -> the method name to call (defaults, then agent.toml ``[boi.methods]``)."""
    names = {key: default for key, (default, _) in METHODS.items()}
    for key, value in (overrides or {}).items():
        if key not in METHODS:
            raise ValueError(f"unknown BOI method setting {key!r} (known: {', '.join(sorted(METHODS))})")
        if not value or not str(value).isidentifier():
            raise ValueError(f"BOI method setting {key!r} must be a method name")
        names[key] = str(value)
    return names
