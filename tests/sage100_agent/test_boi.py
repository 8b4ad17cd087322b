"""BOI backend against a fake COM object: call order, return codes, nClear, locks, warnings, recycling."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sage100_agent.fields import FieldRules, parse_create_request
from sage100_agent.model import AgentError, UnknownOutcome

from .conftest import po_body


def request(**overrides):
    body = po_body(**overrides)
    body["lines"] = [
        {
            "type": "misc",
            "item_code": "/SERVICES",
            "description": "Pour footings",
            "quantity": "2",
            "unit_cost": "750.00",
            "gl_account": "5000-01-00",
            "job": {"job_no": "J000123", "cost_code": "100-200", "cost_type": "S"},
        },
        {"type": "comment", "text": "See Asana"},
    ]
    return parse_create_request(body, FieldRules())[0]


def test_session_setup_and_po_call_order(boi, sage):
    result = boi.create_purchase_order(request())
    assert result.po.po_number == "0000100" and result.po.external_id == "1209876543210987"
    assert result.po.updated_at == "2025-03-01T20:30:30Z"  # "14.50833" Chicago -> UTC
    session = sage.calls("SY_Session")
    assert session[:2] == [("nSetUser", "agent"), ("nSetCompany", "ABC")]
    # Module context reset before the write: date, module, program (§1.1, §8.2).
    i = session.index(("nSetDate", "P/O"))
    assert session[i : i + 4] == [
        ("nSetDate", "P/O"),
        ("nSetModule", "P/O"),
        ("nLookupTask", "PO_PurchaseOrder_ui"),
        ("nSetProgram", 42),
    ]
    assert ("nSetDate", "P/O", "20250301") in [(m, *a) for o, m, a in sage.log if o == "SY_Session"]
    bus = [(m, a) for m, a in sage.calls("PO_PurchaseOrder_bus") if m != "DropObject"]
    assert bus[:3] == [
        ("nGetNextPurchaseOrderNo", None),
        ("nSetKeyValue", "PurchaseOrderNo$"),
        ("nSetKey", None),
    ]
    header = [a for m, a in bus if m == "nSetValue"]
    assert header.index("APDivisionNo$") < header.index("VendorNo$") < header.index("Comment$")
    assert header.index("VendorNo$") == 2 and "UDF_ASANA_GID$" in header  # vendor right after the date
    assert bus[-1] == ("nWrite", None)
    lines = sage.calls("oLines")
    assert lines[0] == ("nAddLine", None) and lines[1] == ("nSetValue", "ItemCode$")  # ItemCode first
    second = lines.index(("nAddLine", None), 1)
    assert lines[second + 1] == ("nSetValue", "ItemCode$")
    stored = sage.pos["0000100"]
    assert stored["UDF_ASANA_GID$"] == "1209876543210987" and stored["VendorNo$"] == "0000001"
    assert sage.lines["0000100"][0]["PurchasesAcctKey$"] == "00000004K"  # formatted account -> AccountKey
    assert len(sage.pos) == 1 and boi.ledger.known_po("1209876543210987") == "0000100"


def test_validation_failure_clears_the_order_and_writes_nothing(boi, sage):
    sage.fail[("oLines", "nSetValue", "JobNo$")] = (0, "Job J000123 is closed.")
    with pytest.raises(AgentError) as exc:
        boi.create_purchase_order(request())
    err = exc.value
    assert (err.status, err.code, err.step, err.field, err.sage_message) == (
        422,
        "SAGE_VALIDATION",
        "line[1]",
        "JobNo$",
        "Job J000123 is closed.",
    )
    assert ("nClear", None) in sage.calls("PO_PurchaseOrder_bus")
    assert ("nWrite", None) not in sage.calls("PO_PurchaseOrder_bus")
    assert sage.pos == {}


def test_lock_message_is_423_retryable_and_cleared(boi, sage):
    sage.fail[("PO_PurchaseOrder_bus", "nWrite", None)] = (0, "The record is in use by another workstation.")
    with pytest.raises(AgentError) as exc:
        boi.create_purchase_order(request())
    assert (exc.value.status, exc.value.code, exc.value.retryable) == (423, "RECORD_LOCKED", True)
    assert exc.value.sage_message == "The record is in use by another workstation."
    assert sage.calls("PO_PurchaseOrder_bus")[-2:] == [("nClear", None), ("DropObject", None)]
    assert sage.pos == {}
    assert boi.create_purchase_order(request()).po.po_number == "0000101"  # retry works; 100 was consumed


def test_warnings_are_kept(boi, sage):
    sage.fail[("PO_PurchaseOrder_bus", "nSetValue", "VendorNo$")] = (-1, "Vendor is on credit hold.")
    sage.fail[("PO_PurchaseOrder_bus", "nWrite", None)] = (-1, "Required date is before the order date.")
    result = boi.create_purchase_order(request())
    assert [(w.step, w.field, w.message) for w in result.warnings] == [
        ("header", "VendorNo$", "Vendor is on credit hold."),
        ("write", None, "Required date is before the order date."),
    ]
    assert "0000100" in sage.pos


def test_inactive_gl_account_and_vendor_are_refused_before_the_bus(boi, sage):
    body = request()
    bad = parse_create_request(
        {
            **po_body(),
            "lines": [
                {
                    "type": "misc",
                    "item_code": "/X",
                    "quantity": "1",
                    "unit_cost": "1",
                    "gl_account": "6900-00-00",
                }
            ],
        },
        FieldRules(),
    )[0]
    with pytest.raises(AgentError) as exc:
        boi.create_purchase_order(bad)
    assert exc.value.code == "SAGE_VALIDATION" and exc.value.field == "PurchasesAcctKey$"
    inactive = parse_create_request(po_body(vendor={"division": "00", "vendor_no": "99"}), FieldRules())[0]
    with pytest.raises(AgentError, match="inactive"):
        boi.create_purchase_order(inactive)
    assert "PO_PurchaseOrder_bus" not in [a[0] for o, m, a in sage.log if m == "NewObject" and a]
    assert boi.create_purchase_order(body).po.po_number == "0000100"


def test_com_error_recycles_the_session(boi, sage):
    sage.raise_on = ("AP_Vendor_svc", "nFind")
    with pytest.raises(AgentError) as exc:
        boi.get_vendor("00", "0000001")
    assert (exc.value.code, exc.value.status, exc.value.retryable) == ("SAGE_COM_ERROR", 502, True)
    assert boi.get_vendor("00", "0000001").name == "ABC Concrete Supply"
    assert sage.sessions_created == 2
    assert ("nCleanup", None) in sage.calls("SY_Session")  # the broken session was torn down


def test_com_error_during_nwrite_is_unknown_outcome(boi, sage):
    sage.raise_on = ("PO_PurchaseOrder_bus", "nWrite")
    with pytest.raises(UnknownOutcome) as exc:
        boi.create_purchase_order(request())
    assert exc.value.status == 504
    assert sage.sessions_created == 1
    boi.get_vendor("00", "0000001")
    assert sage.sessions_created == 2


def test_duplicate_external_id_found_by_udf_scan(boi, sage):
    boi.create_purchase_order(request())
    boi.ledger.forget_po("1209876543210987")  # force the UDF scan path (PO created by another agent)
    with pytest.raises(AgentError) as exc:
        boi.create_purchase_order(request())
    assert exc.value.code == "DUPLICATE_EXTERNAL_ID" and exc.value.extra == {"po_number": "0000100"}
    assert len(sage.pos) == 1


def test_login_failure_is_502_not_retryable(boi, sage):
    sage.password = "changed"
    with pytest.raises(AgentError) as exc:
        boi.ping()
    assert (exc.value.code, exc.value.retryable, exc.value.sage_message) == (
        "SAGE_LOGIN_FAILED",
        False,
        "Invalid user logon or password.",
    )


def test_reads_and_change_polling(boi, sage):
    boi.create_purchase_order(request())
    po = boi.get_purchase_order("0000100")
    assert [ln.item_type for ln in po.lines] == ["5", "4"] and str(po.lines[0].extension_amt) == "1500.0"
    assert [p.po_number for p in boi.updated_on_or_after(date(2025, 3, 1), False)] == ["0000100"]
    assert boi.updated_on_or_after(date(2025, 3, 2), False) == []
    assert [v.vendor_no for v in boi.search_vendors("concrete", None, None, 10)] == ["0000001"]
    assert boi.get_gl_account("5000-01-00").account_key == "00000004K"
    assert ("nSetIndex", "kACCOUNT") in sage.calls("GL_Account_svc")
    assert boi.find_by_external_id("nope") is None
    with pytest.raises(AgentError) as exc:
        boi.get_purchase_order("0009999")
    assert exc.value.code == "NOT_FOUND"
    assert datetime(2025, 3, 1, 20, 30, 30, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") == po.updated_at


def test_drain_releases_pooled_sessions(boi, sage):
    boi.ping()
    assert boi.release_sessions() == 1
    assert ("nCleanup", None) in sage.calls("SY_Session")
    boi.ping()
    assert sage.sessions_created == 2


def test_pool_exhaustion_is_503_busy(boi, sage):
    session, generation = boi.pool.acquire()
    try:
        with pytest.raises(AgentError) as exc:
            boi.ping()
        assert (exc.value.code, exc.value.status, exc.value.retryable) == ("SAGE_BUSY", 503, True)
    finally:
        boi.pool.release(session, generation)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("Vendor 0000001 is blocked.", "SAGE_VALIDATION"),  # "lock" inside a word is not a lock
        ("Account is unlocked for edits only by the controller.", "SAGE_VALIDATION"),
        ("The record is locked by another user.", "RECORD_LOCKED"),
        ("Record in use by WKS-12.", "RECORD_LOCKED"),
        ("Unable to obtain a lock on PO_PurchaseOrderHeader.", "RECORD_LOCKED"),
    ],
)
def test_lock_pattern_matches_whole_words_only(boi, sage, message, code):
    sage.fail[("PO_PurchaseOrder_bus", "nSetValue", "VendorNo$")] = (0, message)
    with pytest.raises(AgentError) as exc:
        boi.create_purchase_order(request())
    assert (exc.value.code, exc.value.sage_message) == (code, message)
    assert exc.value.retryable is (code == "RECORD_LOCKED") and sage.pos == {}


def test_a_numeric_udf_is_written_without_the_string_suffix(boi, sage):
    rules = FieldRules(numeric_udfs=frozenset({"UDF_PHASE"}))
    body = po_body(udf={"UDF_PHASE": "3.50", "UDF_NOTE": "rush"})
    body["lines"] = [body["lines"][0]]
    req = parse_create_request(body, rules)[0]
    assert req.udf["UDF_PHASE"] == "3.50" and req.numeric_udfs == {"UDF_PHASE"}
    boi.create_purchase_order(req)
    header = sage.pos["0000100"]
    assert header["UDF_PHASE"] == 3.5 and "UDF_PHASE$" not in header  # numeric column: no "$" (ref §1.2)
    assert header["UDF_NOTE$"] == "rush" and header["UDF_ASANA_GID$"] == "1209876543210987"


@pytest.mark.parametrize(
    ("udf", "message"),
    [
        ({"UDF_PHASE": "three"}, "takes a number"),
        ({"UDF_PHASE": True}, "takes a number"),
        ({"UDF_PHASE": "NaN"}, "finite"),
        ({"UDF_OTHER": 3}, "numeric_udfs"),  # a number for a UDF not declared numeric: said clearly
    ],
)
def test_numeric_udf_values_are_validated(udf, message):
    rules = FieldRules(numeric_udfs=frozenset({"UDF_PHASE"}))
    with pytest.raises(AgentError, match=message) as exc:
        parse_create_request(po_body(udf=udf), rules)
    assert exc.value.status == 400 and exc.value.field == next(iter(udf))
