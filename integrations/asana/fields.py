"""Asana custom-field values: encode what we write, decode what we read — always by field GID.

Pure functions, no I/O. The field definitions come from the project's custom field settings
(`AsanaClient.project_custom_fields`), turned into `FieldSpec`s here; the values are validated
against them BEFORE anything is sent, because Asana's own rejection messages are undocumented
(reference/asana.md §5 "Writing an unknown or disabled enum option…").

Write shapes (reference/asana.md §4.3, [OAS] TaskRequestBase.custom_fields):
    text        str, at most 1024 characters            (we truncate with a visible marker)
    number      JSON number rounded to `precision` (0–6)
    enum        the enum option GID (never the name); disabled options are refused
    multi_enum  list of enum option GIDs                 (shape UNVERIFIED in the reference)
    date        {"date": "YYYY-MM-DD"}                    (docs/vendor-facts.md "Asana date custom
                                                          fields": settled shape; a 400 for the field
                                                          makes `date_shape_fallback` try the bare
                                                          string once, and that field keeps it)
    people      list of user GIDs                        (shape UNVERIFIED in the reference)
    any         None clears the value
Formula fields (`is_formula_field`) and read-only fields (`is_value_read_only`) are never written.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from integrations.base import errors

log = logging.getLogger(__name__)
TEXT_LIMIT = 1024
TRUNCATION_MARKER = " …[truncated by ml-connector]"
FIELD_TYPES = ("text", "number", "enum", "multi_enum", "date", "people", "reference")


class FieldValueError(errors.Invalid):
    """A value cannot be written to a custom field; raised before any request is sent."""

    def __init__(self, spec_or_gid: FieldSpec | str, problem: str):
        gid = spec_or_gid.gid if isinstance(spec_or_gid, FieldSpec) else spec_or_gid
        name = spec_or_gid.name if isinstance(spec_or_gid, FieldSpec) else ""
        label = f"custom field {name!r} ({gid})" if name else f"custom field {gid}"
        super().__init__(f"{label}: {problem}", system="asana", field_errors={gid: problem})
        self.field_gid = gid


@dataclass(frozen=True)
class EnumOption:
    gid: str
    name: str = ""
    enabled: bool = True


@dataclass(frozen=True)
class FieldSpec:
    """What we need to know about one custom field to write it safely."""

    gid: str
    name: str = ""
    type: str = "text"  # resource_subtype
    precision: int | None = None
    enum_options: Mapping[str, EnumOption] = field(default_factory=dict)
    is_formula_field: bool = False
    is_value_read_only: bool = False

    @classmethod
    def from_api(cls, custom_field: Mapping[str, Any]) -> FieldSpec:
        """From a custom field object (as nested in a custom_field_setting or GET /custom_fields/{gid})."""
        options = {
            str(o["gid"]): EnumOption(str(o["gid"]), o.get("name") or "", o.get("enabled", True) is not False)
            for o in custom_field.get("enum_options") or []
        }
        return cls(
            gid=str(custom_field["gid"]),
            name=custom_field.get("name") or "",
            # `type` is deprecated in favour of `resource_subtype` ([OAS] CustomFieldBase).
            type=custom_field.get("resource_subtype") or custom_field.get("type") or "text",
            precision=custom_field.get("precision"),
            enum_options=options,
            is_formula_field=bool(custom_field.get("is_formula_field")),
            is_value_read_only=bool(custom_field.get("is_value_read_only")),
        )

    def option_by_name(self, name: str) -> EnumOption | None:
        """Discovery helper only (mapping editors); writes always use GIDs."""
        for option in self.enum_options.values():
            if option.name == name:
                return option
        return None


def specs_from_settings(settings: Iterable[Mapping[str, Any]]) -> dict[str, FieldSpec]:
    """{field GID: FieldSpec} from GET /projects/{gid}/custom_field_settings items."""
    out: dict[str, FieldSpec] = {}
    for setting in settings:
        custom_field = setting.get("custom_field")
        if custom_field and custom_field.get("gid"):
            spec = FieldSpec.from_api(custom_field)
            out[spec.gid] = spec
    return out


# ---- encoding --------------------------------------------------------------------------------------


def truncate_text(value: str, limit: int = TEXT_LIMIT) -> str:
    """At most `limit` characters; a cut value ends with a visible marker so nobody mistakes it."""
    if len(value) <= limit:
        return value
    return value[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER


def round_number(value: Any, precision: int | None) -> int | float:
    """Round half-up to the field's precision (Asana would round anyway; we decide how)."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{value!r} is not a number") from exc
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    places = 0 if precision is None else max(0, min(int(precision), 6))
    rounded = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return int(rounded) if places == 0 else float(rounded)


def _date_string(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()[:10]
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a date (YYYY-MM-DD)") from exc
    raise ValueError(f"{value!r} is not a date")


def _gid_list(value: Any) -> list[str]:
    items = [value] if isinstance(value, (str, int)) else list(value)
    out = []
    for item in items:
        gid = str(item.get("gid") if isinstance(item, Mapping) else item).strip()
        if not gid.isdigit():
            raise ValueError(f"{item!r} is not a GID")
        out.append(gid)
    return out


def _enabled_option(spec: FieldSpec, gid: str) -> str:
    option = spec.enum_options.get(gid)
    if option is None:
        raise FieldValueError(spec, f"option {gid} is not one of the field's options")
    if not option.enabled:
        raise FieldValueError(spec, f"option {option.name or gid} ({gid}) is disabled and cannot be selected")
    return gid


def encode_value(spec: FieldSpec, value: Any) -> Any:
    """The JSON value to send for `spec`; raises FieldValueError naming the field when it cannot."""
    if spec.is_formula_field:
        raise FieldValueError(
            spec, "is a formula field; its value is computed by Asana and cannot be written"
        )
    if spec.is_value_read_only:
        raise FieldValueError(spec, "is read-only (is_value_read_only) and cannot be written")
    if value is None:
        return None  # clears the value, for every type ([OAS] tag "Custom fields")
    try:
        if spec.type == "text":
            return truncate_text(str(value))
        if spec.type == "number":
            return round_number(value, spec.precision)
        if spec.type == "enum":
            gid = value.gid if isinstance(value, EnumOption) else str(value).strip()
            return _enabled_option(spec, gid)
        if spec.type == "multi_enum":
            gids = [
                o.gid if isinstance(o, EnumOption) else o
                for o in ([value] if isinstance(value, str) else value)
            ]
            return [_enabled_option(spec, g) for g in _gid_list(gids)]
        if spec.type == "date":
            return date_wire(spec.gid, _date_string(value), name=spec.name)
        if spec.type == "people":
            return _gid_list(value)
    except FieldValueError:
        raise
    except (ValueError, TypeError) as exc:
        raise FieldValueError(spec, f"cannot be written as {spec.type}: {exc}") from exc
    raise FieldValueError(spec, f"type {spec.type!r} is not supported by the connector")


def encode_custom_fields(specs: Mapping[str, FieldSpec], values: Mapping[str, Any]) -> dict[str, Any]:
    """{field GID: wire value} for a task's `custom_fields`; every GID must be on the project."""
    out: dict[str, Any] = {}
    for gid, value in values.items():
        spec = specs.get(str(gid))
        if spec is None:
            raise FieldValueError(str(gid), "is not a custom field of the task's project")
        out[spec.gid] = encode_value(spec, value)
    return out


# ---- decoding --------------------------------------------------------------------------------------


def decode_value(entry: Mapping[str, Any]) -> Any:
    """A plain Python value from one entry of a task's `custom_fields` (None when empty).

    text → str, number → Decimal, enum → option GID, multi_enum → [option GIDs],
    date → datetime.date (or an aware datetime when only date_time is set), people → [user GIDs].
    """
    kind = entry.get("resource_subtype") or entry.get("type")
    if kind == "text":
        return entry.get("text_value")
    if kind == "number":
        number = entry.get("number_value")
        return None if number is None else Decimal(str(number))
    if kind == "enum":
        option = entry.get("enum_value")
        return str(option["gid"]) if option else None
    if kind == "multi_enum":
        return [str(o["gid"]) for o in entry.get("multi_enum_values") or []]
    if kind == "date":
        date_value = entry.get("date_value") or {}
        if date_value.get("date"):
            return dt.date.fromisoformat(date_value["date"][:10])
        if date_value.get("date_time"):
            return dt.datetime.fromisoformat(date_value["date_time"].replace("Z", "+00:00"))
        return None
    if kind == "people":
        return [str(p["gid"]) for p in entry.get("people_value") or []]
    return entry.get("display_value")


def decode_custom_fields(task: Mapping[str, Any]) -> dict[str, Any]:
    """{field GID: plain value} for every custom field on a task (the entry's gid is the field's gid)."""
    return {str(e["gid"]): decode_value(e) for e in task.get("custom_fields") or [] if e.get("gid")}


def wire_value_of(entry: Mapping[str, Any]) -> Any:
    """The value as it would be written (for diffing the last known state against a desired state)."""
    value = decode_value(entry)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return date_wire(str(entry.get("gid") or ""), value.date().isoformat())
    if isinstance(value, dt.date):
        return date_wire(str(entry.get("gid") or ""), value.isoformat())
    return value


# ---- the date write shape -----------------------------------------------------------------------
# Settled: {"date": "YYYY-MM-DD"} (docs/vendor-facts.md). Should Asana refuse it for a field with a 400,
# the bare "YYYY-MM-DD" string is tried once; the shape that worked is kept for that field GID in this
# process (and logged), so a wrong guess costs one refused call, never every create.
_date_fields: dict[str, str] = {}  # field GID -> name, every date field encoded in this process
_date_string_fields: set[str] = set()  # date fields that accepted only the bare string
_date_lock = threading.Lock()


def date_wire(gid: str, text: str, *, name: str = "") -> Any:
    with _date_lock:
        if gid:
            _date_fields.setdefault(gid, name)
        bare = gid in _date_string_fields
    return text if bare else {"date": text}


def _date_text(wire: Any) -> str | None:
    if isinstance(wire, dict) and set(wire) == {"date"} and isinstance(wire["date"], str):
        return wire["date"]
    if isinstance(wire, str) and len(wire) == 10:
        try:
            return dt.date.fromisoformat(wire).isoformat()
        except ValueError:
            return None
    return None


def date_shape_fallback(custom_fields: Mapping[str, Any], message: str) -> dict[str, Any] | None:
    """The same `custom_fields` with the date fields the 400 `message` is about in the other shape, or
    None when the refusal is not about a date field we wrote (then nothing is retried)."""
    text = (message or "").lower()
    out, changed = dict(custom_fields), []
    with _date_lock:
        known, bare = dict(_date_fields), set(_date_string_fields)
    for gid, wire in custom_fields.items():
        if gid not in known or (date := _date_text(wire)) is None:
            continue
        if isinstance(wire, str) != (gid in bare):
            continue  # not the shape the encoder writes for this field: not ours to correct
        name = known[gid].lower()
        if gid in text or (name and name in text) or "date" in text:
            out[gid] = {"date": date} if isinstance(wire, str) else date
            changed.append(gid)
    return out if changed else None


def date_shape_worked(before: Mapping[str, Any], after: Mapping[str, Any], message: str) -> None:
    """The other shape was accepted: keep it for those fields, and say so once."""
    with _date_lock:
        for gid, wire in after.items():
            if wire == before.get(gid):
                continue
            if isinstance(wire, str):
                _date_string_fields.add(gid)
            else:
                _date_string_fields.discard(gid)
            log.warning(
                "asana: date custom field %s (%s) was refused with 400 (%s); the %s shape was accepted and "
                "is used for it from now on — see docs/vendor-facts.md",
                gid,
                _date_fields.get(gid) or "?",
                message,
                "bare string" if isinstance(wire, str) else '{"date": …}',
            )


def forget_date_shapes() -> None:
    """Back to the settled shape for every field (tests; a process restart does the same)."""
    with _date_lock:
        _date_fields.clear()
        _date_string_fields.clear()
