"""Acumatica record format: `{"value": x}` wrapping, custom fields, and the OData query parameters.

Contract-based REST wraps every general field as `{"value": x}`; an empty `{}` means "no value".
System fields (`id`, `rowNumber`, `_links`, `error`, `files`) are not wrapped, linked entities are
nested objects and detail entities are lists (reference/acumatica.md §4.1). Custom fields live in a
`custom` block keyed by view and field: `{"Document": {"UsrX": {"type": "CustomStringField", ...}}}`.

`unwrap` turns an entity into a `Record` (a plain dict of field -> value, with the system fields kept
apart as attributes) and `wrap` does the reverse for PUT bodies and action payloads.

Query helpers build `$filter` expressions in OData v3 syntax with literals Acumatica accepts:
strings in single quotes (quotes doubled), `datetimeoffset'2024-07-15T10:31:28.402+00:00'` for
date-times (always sent in UTC) and `date'2025-06-17'` for dates (reference §4.2, §8.6). The query
string is encoded by `encode_query` so `:` → %3A, `+` → %2B and spaces → %20, as the docs require.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

SYSTEM_KEYS = frozenset({"id", "rowNumber", "_links", "error", "files", "custom", "delete"})
CUSTOM_TYPES = {
    str: "CustomStringField",
    bool: "CustomBooleanField",
    int: "CustomIntField",
    float: "CustomDecimalField",
    Decimal: "CustomDecimalField",
}


class Record(dict):
    """One entity's fields unwrapped; system fields as attributes.

    `record["Amount"]` is the value (Decimal for numbers when parsed by the client), linked entities
    are `Record`s, detail entities are lists of `Record`s. `custom` maps "View.Field" -> value.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.id: str | None = None
        self.row_number: int | None = None
        self.links: dict[str, Any] = {}
        self.error: str | None = None
        self.custom: dict[str, Any] = {}
        self.field_errors: dict[str, str] = {}


def unwrap(entity: Mapping[str, Any] | None) -> Record:
    """`{"Amount": {"value": 5}, "Status": {}, "id": "…"}` → Record(Amount=5, Status=None), id apart."""
    record = Record()
    if not entity:
        return record
    for key, raw in entity.items():
        if key == "id":
            record.id = raw
        elif key == "rowNumber":
            record.row_number = raw
        elif key == "_links":
            record.links = dict(raw or {})
        elif key == "error":
            record.error = raw
        elif key == "custom":
            record.custom = _unwrap_custom(raw)
        elif key == "files":
            record[key] = raw
        elif isinstance(raw, list):
            record[key] = [unwrap(item) for item in raw]
        elif isinstance(raw, dict) and _is_value(raw):
            record[key] = raw.get("value")
            if raw.get("error"):
                record.field_errors[key] = raw["error"]
        elif isinstance(raw, dict):
            record[key] = unwrap(raw)
        else:
            record[key] = raw
    return record


def _is_value(obj: Mapping[str, Any]) -> bool:
    """A wrapped value: {} or a dict whose keys are only value/error (not a linked entity)."""
    return set(obj) <= {"value", "error"}


def _unwrap_custom(block: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for view, fields in (block or {}).items():
        for name, field in (fields or {}).items():
            out[f"{view}.{name}"] = field.get("value") if isinstance(field, dict) else field
    return out


def wrap(fields: Mapping[str, Any], *, custom: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The reverse of `unwrap` for request bodies.

    Plain values become `{"value": …}`; dicts are linked entities; lists of dicts are detail lines;
    `id`, `rowNumber` and `delete` pass through unwrapped. None values are left out: the contract's
    value types are not nullable, so "no change" is expressed by omission.
    `custom` maps "View.Field" to a value or to a (type, value) pair.
    """
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in ("id", "rowNumber", "delete"):
            body[key] = value
        elif isinstance(value, Record):
            body[key] = wrap(value, custom=value.custom or None)
        elif isinstance(value, Mapping):
            body[key] = wrap(value)
        elif isinstance(value, list | tuple):
            body[key] = [wrap(item) for item in value]
        else:
            body[key] = {"value": to_json_value(value)}
    if custom:
        body["custom"] = wrap_custom(custom)
    return body


def wrap_custom(custom: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    block: dict[str, dict[str, Any]] = {}
    for path, value in custom.items():
        view, _, name = path.partition(".")
        if not name:
            raise ValueError(f"custom field {path!r} must be 'View.Field'")
        if isinstance(value, tuple):
            type_name, value = value
        else:
            type_name = _custom_type(value)
        block.setdefault(view, {})[name] = {"type": type_name, "value": to_json_value(value)}
    return block


def _custom_type(value: Any) -> str:
    if isinstance(value, datetime | date):
        return "CustomDateTimeField"
    for klass, name in CUSTOM_TYPES.items():
        if type(value) is klass:
            return name
    return "CustomStringField"


def to_json_value(value: Any) -> Any:
    """Python → JSON value: Decimal as a number, date-times as ISO 8601 with offset."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat(timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat() + "T00:00:00+00:00"  # naive date-times fail the contract (SPEC_GAPS.md)
    return value


def parse_datetime(value: str | None) -> datetime | None:
    """Acumatica date-times ("2024-12-18T17:07:45.433+00:00"); naive values are taken as UTC."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# ---- $filter ----------------------------------------------------------------------------------


def literal(value: Any) -> str:
    """An OData v3 literal as Acumatica expects it (not yet URL-encoded)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        utc = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        # yyyy-MM-ddTHH:mm:ss.fffK with an explicit +00:00 offset (reference §4.2, §8.6)
        return f"datetimeoffset'{utc.strftime('%Y-%m-%dT%H:%M:%S.')}{utc.microsecond // 1000:03d}+00:00'"
    if isinstance(value, date):
        return f"date'{value.isoformat()}'"
    if isinstance(value, int | float | Decimal):
        return str(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"


def cond(field: str, op: str, value: Any) -> str:
    if op not in ("eq", "ne", "gt", "ge", "lt", "le"):
        raise ValueError(f"unsupported $filter operator {op!r}")
    return f"{field} {op} {literal(value)}"


def any_of(field: str, values: Iterable[Any]) -> str:
    """`Status eq 'Balanced' or Status eq 'Pending Approval'` (parenthesised when several)."""
    parts = [cond(field, "eq", v) for v in values]
    if not parts:
        raise ValueError(f"any_of({field!r}) needs at least one value")
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def all_of(*conditions: str | None) -> str | None:
    parts = [c for c in conditions if c]
    return " and ".join(parts) if parts else None


def build_query(
    *,
    filter: str | None = None,  # noqa: A002 - the OData name
    select: Iterable[str] | str | None = None,
    expand: Iterable[str] | str | None = None,
    custom: Iterable[str] | str | None = None,
    top: int | None = None,
    skip: int | None = None,
) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []

    def joined(v: Iterable[str] | str) -> str:
        return v if isinstance(v, str) else ",".join(v)

    if filter:
        params.append(("$filter", filter))
    if select:
        params.append(("$select", joined(select)))
    if expand:
        params.append(("$expand", joined(expand)))
    if custom:
        params.append(("$custom", joined(custom)))
    if top is not None:
        params.append(("$top", str(int(top))))
    if skip:
        params.append(("$skip", str(int(skip))))
    return params


def encode_query(params: Iterable[tuple[str, str]]) -> str:
    """`$filter=LastModifiedDateTime%20gt%20datetimeoffset'2024-07-15T10%3A31%3A28.402%2B00%3A00'`.

    Spaces become %20 (not '+', which would be read back as a space but is ambiguous next to the
    '+' of an offset); ':' and '+' are always escaped.
    """
    return "&".join(f"{k}={quote(v, safe=chr(39) + '(),/*')}" for k, v in params)


def encode_key(value: Any) -> str:
    """One key segment of GET /Bill/{Type}/{ReferenceNbr}: `Credit Adj.` → `Credit%20Adj.`.

    A key that contains '/' cannot be addressed by key at all (reference §4.2): use the id.
    """
    text = str(value)
    if "/" in text:
        raise ValueError(f"key {text!r} contains '/': address the record by its id instead")
    return quote(text, safe="")
