"""Simulated backend and the shared field rules: validations, locks, lost answers, time conversion."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sage100_agent.fields import (
    FieldRules,
    decimal_hours_to_seconds,
    normalize_vendor_no,
    parse_create_request,
    sage_to_utc,
    seconds_to_decimal_hours,
    utc_to_sage,
)
from sage100_agent.model import AgentError, UnknownOutcome

from .conftest import po_body

CHICAGO = ZoneInfo("America/Chicago")


def parse(body):
    return parse_create_request(body, FieldRules())


@pytest.mark.parametrize(
    ("raw", "norm"), [("150", "0000150"), (" acme ", "ACME"), ("0000001", "0000001"), ("st-01", "ST-01")]
)
def test_vendor_numbers_are_normalised(raw, norm):
    assert normalize_vendor_no(raw) == norm


def test_vendor_number_too_long_is_refused():
    with pytest.raises(AgentError) as exc:
        normalize_vendor_no("TOOLONGVENDOR")
    assert (exc.value.status, exc.value.field) == (400, "VendorNo$")


def test_decimal_hours_round_trip():
    assert decimal_hours_to_seconds("14.50833") == 14 * 3600 + 30 * 60 + 30
    assert decimal_hours_to_seconds("9.25") == 9 * 3600 + 15 * 60
    assert decimal_hours_to_seconds("23.99999") == 86399
    for seconds in (0, 1, 59, 3599, 52230, 86399):
        assert decimal_hours_to_seconds(seconds_to_decimal_hours(seconds)) == seconds


def test_sage_local_time_converts_to_utc_across_dst():
    # 2025-03-01 is CST (UTC-6); 2025-07-01 is CDT (UTC-5).
    assert sage_to_utc("20250301", "14.50833", CHICAGO) == datetime(2025, 3, 1, 20, 30, 30, tzinfo=UTC)
    assert sage_to_utc("20250701", "9.25", CHICAGO) == datetime(2025, 7, 1, 14, 15, tzinfo=UTC)
    assert sage_to_utc("1753-01-01", "0", CHICAGO) is None
    assert utc_to_sage(datetime(2025, 3, 2, 3, 0, tzinfo=UTC), CHICAGO) == ("20250301", "21.00000")


def test_field_rules_truncate_descriptions_and_refuse_codes():
    body = po_body(comment="x" * 45)
    body["lines"][0]["description"] = "D" * 40
    request, notices = parse(body)
    assert request.comment == "x" * 30 and request.lines[0].description == "D" * 30
    assert {(n.step, n.field) for n in notices} == {("header", "Comment$"), ("line[1]", "ItemCodeDesc$")}
    body = po_body()
    body["lines"][0]["job"]["job_no"] = "J0001234"
    with pytest.raises(AgentError) as exc:
        parse(body)
    assert (exc.value.code, exc.value.step, exc.value.field) == ("VALIDATION_ERROR", "line[1]", "JobNo$")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quantity", "0"),
        ("quantity", "-1"),
        ("unit_cost", "0"),
        ("unit_cost", "-5.00"),
        ("unit_cost", "1.0000001"),
        ("quantity", 1.5),
        ("gl_account", "6000-1-00"),
    ],
)
def test_bad_amounts_and_malformed_accounts_are_refused(field, value):
    body = po_body()
    body["lines"][0][field] = value
    with pytest.raises(AgentError) as exc:
        parse(body)
    assert exc.value.status == 400 and exc.value.step == "line[1]"


def test_line_type_prefixes_are_enforced():
    body = po_body()
    body["lines"][0]["item_code"] = "SERVICES"  # misc without "/"
    with pytest.raises(AgentError):
        parse(body)
    request, _ = parse(po_body())
    assert [line.item_code for line in request.lines] == ["/SERVICES", "REBAR-4", "/C"]


def test_create_stores_one_po_with_lines_and_keys(sim):
    request, _ = parse(po_body())
    result = sim.create_purchase_order(request)
    po = sim.get_purchase_order(result.po.po_number)
    assert po.po_number == "0000100" and po.vendor_no == "0000001" and po.status == "N"
    assert [(ln.line_key, ln.item_type) for ln in po.lines] == [
        ("000001", "5"),
        ("000002", "1"),
        ("000003", "4"),
    ]
    assert po.lines[0].gl_account_key == "00000004K" and po.lines[0].gl_account == "5000-01-00"
    assert po.lines[0].job.job_no == "J000123"
    assert str(po.total()) == "1542.50"
    assert po.udf["UDF_ASANA_GID"] == "1209876543210987"
    assert sim.count_pos() == 1 and sim.find_by_external_id("1209876543210987").po_number == "0000100"


def test_duplicate_external_id_is_409_with_the_existing_number(sim):
    request, _ = parse(po_body())
    sim.create_purchase_order(request)
    with pytest.raises(AgentError) as exc:
        sim.create_purchase_order(request)
    assert exc.value.status == 409 and exc.value.extra == {"po_number": "0000100"}
    assert sim.count_pos() == 1


@pytest.mark.parametrize(
    ("vendor", "account", "field"),
    [
        ("9999999", "5000-01-00", "VendorNo$"),
        ("99", "5000-01-00", "VendorNo$"),  # 0000099 is inactive
        ("1", "6900-00-00", "PurchasesAcctKey$"),
        ("1", "7777-00-00", "PurchasesAcctKey$"),
    ],
)
def test_sage_validations_are_422_and_write_nothing(sim, vendor, account, field):
    body = po_body(vendor={"division": "0", "vendor_no": vendor})
    body["lines"][0]["gl_account"] = account
    request, _ = parse(body)
    with pytest.raises(AgentError) as exc:
        sim.create_purchase_order(request)
    assert (exc.value.status, exc.value.code, exc.value.field) == (422, "SAGE_VALIDATION", field)
    assert exc.value.sage_message
    assert sim.count_pos() == 0


def test_dry_run_checks_everything_and_writes_nothing(sim):
    request, _ = parse(po_body())
    result = sim.create_purchase_order(request, dry_run=True)
    assert result.dry_run and str(result.po.total()) == "1542.50"
    assert sim.count_pos() == 0
    assert sim.create_purchase_order(request).po.po_number == "0000100"  # the number was not consumed


def test_vendor_lock_for_n_calls_is_423_then_clears(sim):
    sim.inject_lock("vendor:00-0000001", calls=2)
    request, _ = parse(po_body())
    for _ in range(2):
        with pytest.raises(AgentError) as exc:
            sim.create_purchase_order(request)
        assert (exc.value.status, exc.value.retryable, exc.value.field) == (423, True, "VendorNo$")
        assert "in use" in exc.value.sage_message
    assert sim.count_pos() == 0
    assert sim.create_purchase_order(request).po.po_number == "0000100"


def test_sequence_lock_for_n_seconds(sim):
    sim.inject_lock("po_sequence", seconds=30, message="PurchaseOrderNo is locked by user MARY")
    request, _ = parse(po_body())
    with pytest.raises(AgentError) as exc:
        sim.create_purchase_order(request)
    assert exc.value.code == "RECORD_LOCKED" and exc.value.retry_after >= 29
    assert exc.value.sage_message == "PurchaseOrderNo is locked by user MARY"
    sim.clear_faults()
    assert sim.create_purchase_order(request).po.po_number == "0000100"


def test_write_then_lost_answer_commits_the_po(sim):
    sim.inject_unknown_outcome(calls=1)
    request, _ = parse(po_body())
    with pytest.raises(UnknownOutcome) as exc:
        sim.create_purchase_order(request)
    assert exc.value.status == 504
    assert sim.count_pos("1209876543210987") == 1  # the write happened


def test_updated_on_or_after_and_touch(sim):
    fixed = datetime(2025, 3, 1, 20, 30, 30, tzinfo=UTC)
    sim.clock = lambda: fixed
    request, _ = parse(po_body())
    po = sim.create_purchase_order(request).po
    assert (po.date_updated, po.time_updated, po.updated_at) == (
        "20250301",
        "14.50833",
        "2025-03-01T20:30:30Z",
    )
    sim.touch_po(po.po_number, status="O", at=datetime(2025, 3, 3, 15, 0, tzinfo=UTC))
    assert [p.status for p in sim.updated_on_or_after(datetime(2025, 3, 3).date(), False)] == ["O"]
    assert sim.updated_on_or_after(datetime(2025, 3, 4).date(), False) == []


def test_vendor_and_gl_reads(sim):
    assert [v.vendor_no for v in sim.search_vendors("concrete", None, None, 10)] == ["0000001"]
    assert len(sim.search_vendors("", None, "00-0000002", 10)) == 3
    assert sim.get_gl_account("6000-00-00").account_key == "00000002K"
    assert sim.get_gl_account("00000007K").active is False
    assert [a.account for a in sim.list_gl_accounts("job cost", "A", None, 10)] == [
        "5000-01-00",
        "5000-02-00",
        "5000-03-00",
    ]
