"""ERP values → Asana custom-field wire values, by the target field's type. Pure: no I/O, no ORM.

The field's live definition (`integrations.asana.fields.FieldSpec`, from the project's custom field
settings) decides the encoding; the wire encoding itself (rounding to precision, date objects, text
truncation with a marker, enabled-option checks) is `fields.encode_value` — reused, not duplicated.
What this module adds is the ERP side: reading a value at a source path, and translating ERP values
to Asana identities — enum options through `ValueMapping`, people through `UserMapping`.

Every failure is a `ConversionError` naming the field and the value, so the record can be
quarantined with a reason an operator can act on while the other records keep flowing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from integrations.asana import fields as cf


class ConversionError(ValueError):
    """One mapped value cannot be written; `reason` is shown to the operator as is."""

    def __init__(self, mapping: MappingSpec, reason: str):
        label = mapping.cached_name or mapping.field_gid
        super().__init__(f"{mapping.source_path} → {label!r} ({mapping.field_gid}): {reason}")
        self.mapping = mapping
        self.reason = reason


@dataclass(frozen=True)
class MappingSpec:
    """A FieldMapping as plain data (see `from_model`), so plans can be computed and tested without a DB."""

    source_path: str
    field_gid: str
    cached_name: str = ""
    cached_type: str = ""
    precision: int | None = None
    transform: str = ""
    # ERP value → enum option GID (ValueMapping kind enum_option for this field mapping).
    values: Mapping[str, str] = field(default_factory=dict)
    status: str = "ok"
    status_reason: str = ""

    @classmethod
    def from_model(cls, mapping: Any) -> MappingSpec:
        values = {
            v.source_value: v.target_value for v in mapping.value_mappings.all() if v.kind == "enum_option"
        }
        return cls(
            source_path=mapping.source_path,
            field_gid=mapping.asana_field_gid,
            cached_name=mapping.cached_name,
            cached_type=mapping.cached_type,
            precision=mapping.precision,
            transform=mapping.transform,
            values=values,
            status=mapping.status,
            status_reason=mapping.status_reason,
        )


@dataclass(frozen=True)
class People:
    """UserMapping as plain data: e-mail (lower-case) and Acumatica employee id → Asana user GID."""

    by_email: Mapping[str, str] = field(default_factory=dict)
    by_employee: Mapping[str, str] = field(default_factory=dict)

    def gid_for(self, value: str) -> str | None:
        text = value.strip()
        return self.by_email.get(text.lower()) or self.by_employee.get(text)


def value_at(record: Mapping[str, Any], path: str) -> Any:
    """The value at `path` in an unwrapped Acumatica record: "Amount", "ContactInfo/Email",
    or a custom field "custom/Document.UsrJob" (reference/acumatica.md §4.1)."""
    if path.startswith("custom/"):
        return (getattr(record, "custom", None) or {}).get(path[len("custom/") :])
    current: Any = record
    for part in path.split("/"):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def spec_for(mapping: MappingSpec, live: cf.FieldSpec | None) -> cf.FieldSpec:
    """The live definition when the project has the field; else one built from the cached type (dry runs
    and unit tests). The options of a cached enum are the GIDs its value mappings point to."""
    if live is not None:
        return live
    options = {gid: cf.EnumOption(gid) for gid in mapping.values.values()}
    return cf.FieldSpec(
        gid=mapping.field_gid,
        name=mapping.cached_name,
        type=mapping.cached_type or "text",
        precision=mapping.precision,
        enum_options=options,
    )


def _text_of(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def _option_for(mapping: MappingSpec, spec: cf.FieldSpec, value: Any) -> str:
    text = _text_of(value).strip()
    gid = mapping.values.get(text)
    if gid is None:
        # An explicit mapping is required: option names are never matched by name (drift-safe).
        raise ConversionError(mapping, f"no value mapping for {text!r} (add one to the field mapping)")
    return gid


def _split_multi(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    # Acumatica multiselect combos hold internal values separated by commas (§4.1).
    return [part for part in (p.strip() for p in str(value).split(",")) if part]


def convert(
    mapping: MappingSpec,
    value: Any,
    *,
    live: cf.FieldSpec | None = None,
    people: People | None = None,
) -> Any:
    """The wire value for one mapped field; None clears. Raises ConversionError."""
    spec = spec_for(mapping, live)
    if value is None or (isinstance(value, str) and not value.strip() and spec.type != "text"):
        return None
    try:
        if spec.type == "enum":
            return cf.encode_value(spec, _option_for(mapping, spec, value))
        if spec.type == "multi_enum":
            gids = [_option_for(mapping, spec, v) for v in _split_multi(value)]
            return cf.encode_value(spec, gids)
        if spec.type == "people":
            people = people or People()
            gids = []
            for item in _split_multi(value):
                gid = people.gid_for(_text_of(item))
                if gid is None:
                    raise ConversionError(mapping, f"no user mapping for {_text_of(item)!r}")
                gids.append(gid)
            return cf.encode_value(spec, gids)
        if spec.type == "text":
            return cf.encode_value(spec, _text_of(value))
        return cf.encode_value(spec, value)
    except cf.FieldValueError as exc:
        problem = next(iter(exc.field_errors.values()), exc.message)
        raise ConversionError(mapping, f"{problem} (value {_text_of(value)!r})") from exc


def convert_record(
    record: Mapping[str, Any],
    mappings: list[MappingSpec],
    *,
    live_specs: Mapping[str, cf.FieldSpec] | None = None,
    people: People | None = None,
) -> tuple[dict[str, Any], list[ConversionError]]:
    """({field GID: wire value}, problems) for every mapping; a failing mapping is left out and reported."""
    values: dict[str, Any] = {}
    problems: list[ConversionError] = []
    for mapping in mappings:
        live = (live_specs or {}).get(mapping.field_gid)
        try:
            values[mapping.field_gid] = convert(
                mapping, value_at(record, mapping.source_path), live=live, people=people
            )
        except ConversionError as exc:
            problems.append(exc)
    return values, problems
