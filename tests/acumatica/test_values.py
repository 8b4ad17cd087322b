"""Record format and query encoding (no HTTP, no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from integrations.acumatica import values
from integrations.acumatica.client import collect_field_errors

# Shape from reference/acumatica.md §4.1 (AIR entity representation) and §6.2 (C# client tests).
BILL = {
    "id": "b6410d82-0000-0000-0000-000000000001",
    "rowNumber": 1,
    "note": {"value": "call vendor"},
    "Amount": {"value": 201.73},
    "Status": {},
    "Hold": {"value": False},
    "Details": [
        {
            "id": "b8410d82-0000-0000-0000-000000000002",
            "rowNumber": 1,
            "Amount": {"value": 201.73},
            "Account": {"value": "50100"},
        },
    ],
    "MainContact": {"Email": {"value": "ap@abc.example"}, "Address": {"City": {"value": "Boise"}}},
    "custom": {"Document": {"UsrJobCode": {"type": "CustomStringField", "value": "J-14"}}},
    "_links": {"self": "/ERP/entity/Default/24.200.001/Bill/b6410d82"},
}


def test_unwrap_values_system_fields_details_linked_and_custom():
    rec = values.unwrap(BILL)
    assert rec["Amount"] == 201.73
    assert rec["Status"] is None  # {} is null
    assert rec["Hold"] is False
    assert rec["note"] == "call vendor"
    assert "id" not in rec and rec.id == BILL["id"] and rec.row_number == 1
    assert rec.links["self"].endswith("/Bill/b6410d82")
    assert rec["Details"][0]["Account"] == "50100" and rec["Details"][0].id.endswith("0002")
    assert rec["MainContact"]["Email"] == "ap@abc.example"
    assert rec["MainContact"]["Address"]["City"] == "Boise"
    assert rec.custom == {"Document.UsrJobCode": "J-14"}


def test_wrap_round_trip_and_custom_types():
    body = values.wrap(
        {
            "Type": "Bill",
            "Amount": Decimal("12.50"),
            "Hold": False,
            "Description": None,
            "Date": date(2026, 3, 2),
            "Details": [{"Account": "50100", "Amount": 12.5}],
            "MainContact": {"Email": "x@y.example"},
            "id": "abc",
        },
        custom={"Document.UsrJobCode": "J-14", "Document.UsrUnits": ("CustomIntField", 3)},
    )
    assert body["Type"] == {"value": "Bill"}
    assert body["Amount"] == {"value": 12.5}
    assert "Description" not in body  # None is omitted: value types are not nullable
    assert body["Date"] == {"value": "2026-03-02T00:00:00+00:00"}
    assert body["Details"] == [{"Account": {"value": "50100"}, "Amount": {"value": 12.5}}]
    assert body["MainContact"] == {"Email": {"value": "x@y.example"}}
    assert body["id"] == "abc"
    assert body["custom"] == {
        "Document": {
            "UsrJobCode": {"type": "CustomStringField", "value": "J-14"},
            "UsrUnits": {"type": "CustomIntField", "value": 3},
        }
    }
    assert values.unwrap(body)["Details"][0]["Account"] == "50100"


def test_datetime_filter_is_utc_and_url_encoded():
    plus3 = timezone(timedelta(hours=3))
    since = datetime(2024, 7, 15, 10, 31, 28, 402000, tzinfo=plus3)
    flt = values.all_of(
        values.cond("LastModifiedDateTime", "gt", since),
        values.any_of("Status", ["Balanced", "Pending Approval"]),
    )
    assert flt == (
        "LastModifiedDateTime gt datetimeoffset'2024-07-15T07:31:28.402+00:00' and "
        "(Status eq 'Balanced' or Status eq 'Pending Approval')"
    )
    query = values.encode_query(
        values.build_query(filter=flt, select=["Type", "ReferenceNbr"], top=50, skip=100)
    )
    assert "datetimeoffset'2024-07-15T07%3A31%3A28.402%2B00%3A00'" in query
    assert "Status%20eq%20'Pending%20Approval'" in query
    assert query.endswith("$select=Type,ReferenceNbr&$top=50&$skip=100")
    assert "+" not in query  # a literal '+' would be read back as a space


def test_literals():
    assert values.literal("O'Brien") == "'O''Brien'"
    assert values.literal(True) == "true"
    assert values.literal(date(2025, 6, 17)) == "date'2025-06-17'"
    assert values.literal(datetime(2025, 1, 1)) == "datetimeoffset'2025-01-01T00:00:00.000+00:00'"
    with pytest.raises(ValueError):
        values.cond("Status", "like", "x")


def test_key_encoding():
    assert values.encode_key("Credit Adj.") == "Credit%20Adj."
    assert values.encode_key("INV 001#2") == "INV%20001%232"
    with pytest.raises(ValueError):
        values.encode_key("AB/12")


def test_parse_datetime():
    assert values.parse_datetime("2024-12-18T17:07:45.433+00:00") == datetime(
        2024, 12, 18, 17, 7, 45, 433000, tzinfo=UTC
    )
    assert values.parse_datetime(None) is None


def test_field_error_walk_covers_header_details_linked_and_custom():
    echo = {
        "error": "Inserting  'AP Transactions' record raised at least one error. Please review the errors.",
        "Vendor": {"value": "NOPE", "error": "'Vendor' cannot be found in the system."},
        "Details": [
            {"Amount": {"value": 1}},
            {"Amount": {"value": 2}},
            {
                "Project": {
                    "value": "TES2323T",
                    "error": "Project 'TES2323T  ' cannot be found in the system.",
                },
                "error": "line error",
            },
        ],
        "MainContact": {"Email": {"value": "bad", "error": "Invalid e-mail."}},
        "custom": {"Document": {"UsrX": {"type": "CustomStringField", "value": "x", "error": "too long"}}},
    }
    assert collect_field_errors(echo) == {
        "Vendor": "'Vendor' cannot be found in the system.",
        "Details[2]": "line error",
        "Details[2].Project": "Project 'TES2323T  ' cannot be found in the system.",
        "MainContact.Email": "Invalid e-mail.",
        "custom.Document.UsrX": "too long",
    }
