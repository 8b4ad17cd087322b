"""Find the Asana task a document already has, by its natural key, before creating one again.

Asana has no idempotency key (reference/asana.md §4.6). When a create's outcome is unknown (timeout,
5xx after sending, a crash between the create and storing the GID) the next attempt lists the
project's tasks modified since the first attempt (minus a margin) and matches the natural key:
    1. the "ERP reference" text custom field (`Flow.erp_reference_field_gid`), holding `Bill/000123`;
    2. else, under OAuth, `external.gid` (app-private, §4.5);
    3. else the exact task name — weaker, said so in the audit trail.
`GET /tasks?project=&modified_since=` is read-your-write on every plan, unlike search (§4.7), so a
task created a moment ago is found.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from .plan import FlowSettings

RECONCILE_MARGIN = timedelta(minutes=2)
BASE_FIELDS = ("name", "created_at", "modified_at", "completed", "notes")
CUSTOM_FIELDS = (
    "custom_fields.name",
    "custom_fields.type",
    "custom_fields.resource_subtype",
    "custom_fields.text_value",
    "custom_fields.number_value",
    "custom_fields.enum_value",
    "custom_fields.multi_enum_values",
    "custom_fields.date_value",
    "custom_fields.people_value",
    "custom_fields.display_value",
)


def matches(task: Mapping[str, Any], settings: FlowSettings, key: str, name: str) -> bool:
    if settings.erp_reference_field_gid:
        for entry in task.get("custom_fields") or []:
            if str(entry.get("gid")) == settings.erp_reference_field_gid:
                return (entry.get("text_value") or "").strip() == key
        return False
    if settings.external_prefix:
        return ((task.get("external") or {}).get("gid") or "") == settings.external_prefix + key
    return (task.get("name") or "") == name


def candidates(asana: Any, settings: FlowSettings, since: datetime | None) -> Iterator[dict[str, Any]]:
    fields = BASE_FIELDS + CUSTOM_FIELDS + (("external",) if settings.external_prefix else ())
    start = None if since is None else since - RECONCILE_MARGIN
    return asana.iter_project_tasks(settings.project_gid, modified_since=start, fields=fields)


def find_task(
    asana: Any, settings: FlowSettings, key: str, name: str, since: datetime | None
) -> tuple[dict[str, Any] | None, list[str]]:
    """(the task to adopt, GIDs of further matches). The earliest-created match is adopted; extra
    matches are duplicates made before this connector could see them, reported for an operator."""
    found = [t for t in candidates(asana, settings, since) if matches(t, settings, key, name)]
    if not found:
        return None, []
    found.sort(key=lambda t: (t.get("created_at") or "", int(t["gid"])))
    return found[0], [t["gid"] for t in found[1:]]


def match_method(settings: FlowSettings) -> str:
    if settings.erp_reference_field_gid:
        return f"ERP reference field {settings.erp_reference_field_gid}"
    if settings.external_prefix:
        return "external.gid"
    return "task name (no ERP reference field configured: weaker)"
