"""Value conversion by field type and the pure plan: bad input never stops the flow."""

from __future__ import annotations

from decimal import Decimal

import pytest

from integrations.asana.fields import TRUNCATION_MARKER, EnumOption, FieldSpec
from integrations.flows.documents.plan import BILL, PURCHASE_ORDER, FlowSettings, LinkView, plan_document
from mappings.convert import ConversionError, MappingSpec, People, convert, value_at

AMOUNT = MappingSpec("Amount", "11", "Amount", "number", precision=2)
DUE = MappingSpec("DueDate", "12", "Due", "date")
VENDOR = MappingSpec("Vendor", "13", "Vendor", "text")
STATUS = MappingSpec("Status", "14", "Status", "enum", values={"Balanced": "141", "Open": "142"})
LIVE = {
    "11": FieldSpec("11", "Amount", "number", precision=2),
    "12": FieldSpec("12", "Due", "date"),
    "13": FieldSpec("13", "Vendor", "text"),
    "14": FieldSpec(
        "14",
        "Status",
        "enum",
        enum_options={"141": EnumOption("141", "Balanced"), "142": EnumOption("142", "Open", enabled=False)},
    ),
    "99": FieldSpec("99", "ERP reference", "text"),
}
SETTINGS = FlowSettings(
    doc=BILL, project_gid="1", erp_reference_field_gid="99", mappings=(AMOUNT, DUE, VENDOR, STATUS)
)


def bill(**fields):
    base = {
        "Type": "Bill",
        "ReferenceNbr": "000123",
        "Status": "Balanced",
        "Vendor": "ACME",
        "Amount": Decimal("100.00"),
        "DueDate": "2026-04-01T00:00:00+00:00",
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("mapping", "value", "expected"),
    [
        (AMOUNT, Decimal("12.345678"), 12.35),
        (AMOUNT, Decimal("-40.5"), -40.5),
        (DUE, "2025-01-17T00:00:00+00:00", {"date": "2025-01-17"}),
        (VENDOR, "Société Générale Ümlaut 株式会社", "Société Générale Ümlaut 株式会社"),
        (VENDOR, Decimal("5.10"), "5.10"),
        (STATUS, "Balanced", "141"),
        (AMOUNT, None, None),
    ],
)
def test_values_are_converted_by_the_fields_type(mapping, value, expected):
    assert convert(mapping, value, live=LIVE[mapping.field_gid]) == expected


def test_text_is_truncated_with_a_marker():
    out = convert(VENDOR, "x" * 5000, live=LIVE["13"])
    assert len(out) == 1024 and out.endswith(TRUNCATION_MARKER)


def test_enum_without_a_value_mapping_names_the_value():
    with pytest.raises(ConversionError, match="no value mapping for 'Rejected'"):
        convert(STATUS, "Rejected", live=LIVE["14"])


def test_disabled_option_is_refused():
    with pytest.raises(ConversionError, match="disabled"):
        convert(STATUS, "Open", live=LIVE["14"])


def test_people_through_user_mapping():
    owner = MappingSpec("Owner", "15", "Owner", "people")
    people = People(by_email={"ann@x.example": "777"}, by_employee={"EP01": "778"})
    live = FieldSpec("15", "Owner", "people")
    assert convert(owner, "EP01", live=live, people=people) == ["778"]
    assert convert(owner, "Ann@X.example", live=live, people=people) == ["777"]
    with pytest.raises(ConversionError, match="no user mapping"):
        convert(owner, "EP99", live=live, people=people)


def test_value_at_paths():
    record = {"ContactInfo": {"Email": "a@b"}, "Amount": 1}
    assert value_at(record, "ContactInfo/Email") == "a@b"
    assert value_at(record, "Missing/Deep") is None


def test_plan_create_then_skip_then_update():
    plan = plan_document(bill(), SETTINGS, LinkView(), LIVE)
    assert plan.action == "create"
    assert plan.payload["custom_fields"]["99"] == "Bill/000123"
    linked = LinkView("linked", "500", plan.payload_hash, plan.payload)
    assert plan_document(bill(), SETTINGS, linked, LIVE).action == "skip"
    changed = plan_document(bill(Amount=Decimal("101")), SETTINGS, linked, LIVE)
    assert changed.action == "update"
    assert changed.changes["custom_fields"] == {"11": 101}


def test_bad_bills_do_not_raise():
    no_vendor = plan_document(bill(Vendor=None, DueDate=None), SETTINGS, LinkView(), LIVE)
    assert no_vendor.action == "create"
    assert "13" not in no_vendor.payload["custom_fields"] or no_vendor.payload["custom_fields"]["13"] is None
    assert "—" in no_vendor.payload["name"]
    many_lines = bill(Details=[{"Amount": Decimal(1)}] * 5000)
    assert plan_document(many_lines, SETTINGS, LinkView(), LIVE).action == "create"
    unmapped = plan_document(bill(Status="Rejected"), SETTINGS, LinkView(), LIVE)
    assert unmapped.action == "quarantine" and "'Rejected'" in unmapped.reason


def test_removed_field_or_changed_type_blocks_only_records_with_a_value():
    live = {k: v for k, v in LIVE.items() if k != "13"}
    assert plan_document(bill(), SETTINGS, LinkView(), live).action == "quarantine"
    assert plan_document(bill(Vendor=None), SETTINGS, LinkView(), live).action == "create"
    retyped = {**LIVE, "11": FieldSpec("11", "Amount", "text")}
    assert "type changed from number to text" in plan_document(bill(), SETTINGS, LinkView(), retyped).reason


def test_voided_deleted_and_filtered_documents():
    linked = LinkView("linked", "500", "h", {})
    assert plan_document(bill(Status="Voided"), SETTINGS, linked, LIVE).action == "close"
    assert plan_document(None, SETTINGS, linked, LIVE, key="Bill/000123").reason == "deleted in Acumatica"
    assert plan_document(bill(Status="Voided"), SETTINGS, LinkView(), LIVE).action == "skip"
    filtered = FlowSettings(doc=BILL, project_gid="1", status_filter=("Balanced",))
    assert plan_document(bill(Status="Open"), filtered, LinkView(), LIVE).action == "skip"


def test_purchase_order_field_names():
    settings = FlowSettings(
        doc=PURCHASE_ORDER,
        project_gid="1",
        erp_reference_field_gid="99",
        mappings=(
            MappingSpec("OrderTotal", "11", "Amount", "number", precision=2),
            MappingSpec("VendorID", "13", "Vendor", "text"),
        ),
    )
    po = {
        "Type": "Normal",
        "OrderNbr": "PO000001",
        "Status": "Open",
        "VendorID": "ACME",
        "OrderTotal": Decimal("9.999"),
    }
    plan = plan_document(po, settings, LinkView(), LIVE)
    assert plan.payload["custom_fields"] == {"11": 10.0, "13": "ACME", "99": "Normal/PO000001"}
    assert plan.payload["name"] == "PO PO000001 · ACME · 9.999"
