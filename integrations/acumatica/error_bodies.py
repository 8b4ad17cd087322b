"""Reading Acumatica error bodies: the 422 entity echo and the HttpError shape (reference §6.1, §6.2)."""

from __future__ import annotations

import json
from typing import Any

import requests

from integrations.base import errors


def collect_field_errors(entity: Any, prefix: str = "") -> dict[str, str]:
    """Every `error` in a 422 entity echo: fields, custom fields, linked entities and detail lines.

    Paths look like `Vendor`, `Details[2].Account` (0-based line index), `MainContact.Email`,
    `custom.Document.UsrX`; a detail line's own `error` is reported under `Details[2]`.
    """
    found: dict[str, str] = {}
    if not isinstance(entity, dict):
        return found
    if prefix and entity.get("error") and isinstance(entity["error"], str):
        found[prefix] = entity["error"]
    for key, value in entity.items():
        if key in ("id", "rowNumber", "_links", "error", "files"):
            continue
        path = f"{prefix}.{key}" if prefix else key
        if key == "custom" and isinstance(value, dict):
            for view, fields in value.items():
                for name, item in (fields or {}).items():
                    if isinstance(item, dict) and item.get("error"):
                        found[f"{path}.{view}.{name}"] = item["error"]
        elif isinstance(value, list):
            for i, item in enumerate(value):
                found.update(collect_field_errors(item, f"{path}[{i}]"))
        elif isinstance(value, dict) and set(value) <= {"value", "error"}:
            if value.get("error"):
                found[path] = value["error"]
        elif isinstance(value, dict):
            found.update(collect_field_errors(value, path))
    return found


def json_or_none(response: requests.Response) -> Any:
    try:
        return json.loads(response.content or b"")
    except (ValueError, TypeError):
        return None


def is_http_error(data: dict[str, Any]) -> bool:
    return any(k in data for k in ("exceptionMessage", "exceptionType", "message", "modelState"))


def reclass(error: errors.ConnectorError, klass: type[errors.ConnectorError], **overrides: Any):
    if type(error) is klass and not overrides:
        return error
    kwargs = dict(
        system=error.system,
        status=error.status,
        body_excerpt=error.body_excerpt,
        retry_after=error.retry_after,
        field_errors=error.field_errors,
        outcome_unknown=error.outcome_unknown,
        vendor_code=error.vendor_code,
    )
    message = overrides.pop("message", error.message)
    kwargs.update(overrides)
    return klass(message, **kwargs)
