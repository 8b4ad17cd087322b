"""Custom-field value encoding and decoding: pure functions, no sandbox."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from integrations.asana import fields as cf
from integrations.base import errors

TEXT = cf.FieldSpec("11", "Vendor", "text")
AMOUNT = cf.FieldSpec("12", "Amount", "number", precision=2)
COUNT = cf.FieldSpec("13", "Count", "number", precision=0)
STATUS = cf.FieldSpec(
    "14",
    "Status",
    "enum",
    enum_options={"141": cf.EnumOption("141", "Open"), "142": cf.EnumOption("142", "Old", enabled=False)},
)
TAGS = cf.FieldSpec(
    "15",
    "Tags",
    "multi_enum",
    enum_options={
        "151": cf.EnumOption("151", "A"),
        "152": cf.EnumOption("152", "B"),
        "153": cf.EnumOption("153", "X", False),
    },
)
DUE = cf.FieldSpec("16", "Due", "date")
PEOPLE = cf.FieldSpec("17", "Approvers", "people")
FORMULA = cf.FieldSpec("18", "Total", "number", precision=2, is_formula_field=True)
LOCKED = cf.FieldSpec("19", "Locked", "text", is_value_read_only=True)
SPECS = {s.gid: s for s in (TEXT, AMOUNT, COUNT, STATUS, TAGS, DUE, PEOPLE, FORMULA, LOCKED)}


def test_text_kept_and_truncated_with_a_visible_marker():
    assert cf.encode_value(TEXT, "ACME") == "ACME"
    assert cf.encode_value(TEXT, "x" * 1024) == "x" * 1024
    long = cf.encode_value(TEXT, "y" * 5000)
    assert len(long) == 1024 and long.endswith(cf.TRUNCATION_MARKER) and long.startswith("y" * 900)
    assert cf.encode_value(TEXT, 42) == "42"


@pytest.mark.parametrize(
    "value, expected",
    [(Decimal("1234.565"), 1234.57), ("10.004", 10.0), (7, 7.0), (0.125, 0.13), ("-2.345", -2.35)],
)
def test_number_rounded_half_up_to_precision(value, expected):
    assert cf.encode_value(AMOUNT, value) == expected


def test_number_precision_zero_gives_an_integer_and_bad_numbers_are_refused():
    assert cf.encode_value(COUNT, "2.5") == 3 and isinstance(cf.encode_value(COUNT, 2.4), int)
    for bad in ("abc", "NaN", "Infinity"):
        with pytest.raises(cf.FieldValueError, match="Amount"):
            cf.encode_value(AMOUNT, bad)


def test_enum_by_option_gid_and_disabled_or_unknown_options_refused():
    assert cf.encode_value(STATUS, "141") == "141"
    assert cf.encode_value(STATUS, cf.EnumOption("141", "Open")) == "141"
    with pytest.raises(cf.FieldValueError, match="disabled") as exc:
        cf.encode_value(STATUS, "142")
    assert "Status" in str(exc.value) and exc.value.field_errors == {"14": exc.value.field_errors["14"]}
    with pytest.raises(cf.FieldValueError, match="not one of the field's options"):
        cf.encode_value(STATUS, "Open")  # a name, never accepted


def test_multi_enum_list_of_option_gids():
    assert cf.encode_value(TAGS, ["151", "152"]) == ["151", "152"]
    assert cf.encode_value(TAGS, "151") == ["151"]
    with pytest.raises(cf.FieldValueError, match="disabled"):
        cf.encode_value(TAGS, ["151", "153"])


def test_date_object_shape():
    expected = {"date": "2026-07-31"}
    assert cf.encode_value(DUE, dt.date(2026, 7, 31)) == expected
    assert cf.encode_value(DUE, dt.datetime(2026, 7, 31, 23, 0)) == expected
    assert cf.encode_value(DUE, "2026-07-31T00:00:00") == expected
    with pytest.raises(cf.FieldValueError, match="Due"):
        cf.encode_value(DUE, "31/07/2026")


def test_people_list_of_user_gids():
    assert cf.encode_value(PEOPLE, ["1", 2]) == ["1", "2"]
    assert cf.encode_value(PEOPLE, [{"gid": "3", "name": "x"}]) == ["3"]
    with pytest.raises(cf.FieldValueError, match="not a GID"):
        cf.encode_value(PEOPLE, ["alice@example.com"])


def test_formula_and_read_only_refused_before_sending_even_to_clear():
    with pytest.raises(cf.FieldValueError, match="'Total'.*formula"):
        cf.encode_value(FORMULA, 5)
    with pytest.raises(cf.FieldValueError, match="'Locked'.*read-only"):
        cf.encode_value(LOCKED, None)
    assert isinstance(cf.FieldValueError(LOCKED, "x"), errors.PermanentError)


def test_none_clears_every_writable_type():
    for spec in (TEXT, AMOUNT, STATUS, TAGS, DUE, PEOPLE):
        assert cf.encode_value(spec, None) is None


def test_encode_custom_fields_requires_fields_on_the_project():
    assert cf.encode_custom_fields(SPECS, {"11": "a", "12": 1}) == {"11": "a", "12": 1.0}
    with pytest.raises(cf.FieldValueError, match="999.*not a custom field of the task's project"):
        cf.encode_custom_fields(SPECS, {"999": "a"})


def test_specs_from_settings_reads_the_api_shape():
    settings = [
        {
            "gid": "900",
            "custom_field": {
                "gid": "14",
                "name": "Status",
                "resource_subtype": "enum",
                "enum_options": [
                    {"gid": "141", "name": "Open", "enabled": True},
                    {"gid": "142", "name": "Old", "enabled": False},
                ],
            },
        },
        {
            "gid": "901",
            "custom_field": {
                "gid": "12",
                "name": "Amount",
                "type": "number",
                "precision": 2,
                "is_formula_field": False,
            },
        },
    ]
    specs = cf.specs_from_settings(settings)
    assert specs["14"].enum_options["142"].enabled is False and specs["14"].type == "enum"
    assert specs["12"].precision == 2 and specs["12"].type == "number"
    assert specs["14"].option_by_name("Open").gid == "141"


def test_decode_values_by_gid():
    task = {
        "custom_fields": [
            {"gid": "11", "resource_subtype": "text", "text_value": "ACME"},
            {"gid": "12", "resource_subtype": "number", "number_value": 1234.57},
            {"gid": "14", "resource_subtype": "enum", "enum_value": {"gid": "141", "name": "Open"}},
            {
                "gid": "15",
                "resource_subtype": "multi_enum",
                "multi_enum_values": [{"gid": "151"}, {"gid": "152"}],
            },
            {
                "gid": "16",
                "resource_subtype": "date",
                "date_value": {"date": "2026-07-31", "date_time": None},
            },
            {"gid": "17", "resource_subtype": "people", "people_value": [{"gid": "3"}]},
            {"gid": "20", "resource_subtype": "enum"},  # enum_value omitted when empty
            {"gid": "21", "resource_subtype": "date", "date_value": None},
        ]
    }
    assert cf.decode_custom_fields(task) == {
        "11": "ACME",
        "12": Decimal("1234.57"),
        "14": "141",
        "15": ["151", "152"],
        "16": dt.date(2026, 7, 31),
        "17": ["3"],
        "20": None,
        "21": None,
    }


def test_wire_value_round_trip():
    entry = {"gid": "12", "resource_subtype": "number", "number_value": 10.0}
    assert cf.wire_value_of(entry) == 10
    entry = {"gid": "16", "resource_subtype": "date", "date_value": {"date": "2026-07-31"}}
    assert cf.wire_value_of(entry) == cf.encode_value(DUE, "2026-07-31")
