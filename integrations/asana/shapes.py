"""Asana's API shapes the client relies on: page size, the opt_fields every call names, the fields a
task write may carry, Asana-specific errors, approval outcomes and Asana's timestamps (reference/asana.md)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from integrations.asana import fields as cf
from integrations.base import errors

log = logging.getLogger(__name__)

PAGE_SIZE = 100
REFRESH_MARGIN = timedelta(seconds=60)
_seen_changes: set[str] = set()

# ---- opt_fields (all within the spec's enums; gid is always returned) ------------------------------
CUSTOM_FIELD_VALUE_FIELDS = (
    "custom_fields.name",
    "custom_fields.type",
    "custom_fields.resource_subtype",
    "custom_fields.display_value",
    "custom_fields.enabled",
    "custom_fields.text_value",
    "custom_fields.number_value",
    "custom_fields.enum_value",
    "custom_fields.multi_enum_values",
    "custom_fields.date_value",
    "custom_fields.people_value",
)
TASK_FIELDS = (
    "name",
    "resource_subtype",
    "approval_status",
    "completed",
    "completed_at",
    "created_at",
    "modified_at",
    "due_on",
    "notes",
    "assignee",
    "permalink_url",
    "memberships.project",
    "memberships.section",
    *CUSTOM_FIELD_VALUE_FIELDS,
)
CUSTOM_FIELD_SETTING_FIELDS = (
    "custom_field",
    "custom_field.name",
    "custom_field.type",
    "custom_field.resource_subtype",
    "custom_field.enum_options",
    "custom_field.enum_options.name",
    "custom_field.enum_options.enabled",
    "custom_field.precision",
    "custom_field.is_formula_field",
    "custom_field.is_value_read_only",
    "custom_field.enabled",
    "is_important",
    "parent",
)
WEBHOOK_FIELDS = (
    "active",
    "resource",
    "resource.name",
    "target",
    "filters",
    "created_at",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
)
USER_FIELDS = ("name", "email")
ME_FIELDS = ("name", "email", "workspaces", "workspaces.name")
MEMBERSHIP_FIELDS = ("user", "user.name", "workspace", "is_active", "is_admin", "is_guest", "is_view_only")
PROJECT_FIELDS = ("name", "archived", "workspace", "workspace.name")
SECTION_FIELDS = ("name",)
STORY_FIELDS = ("text", "created_at", "created_by")
# What the approval binding reads from a task's history: who changed what, when, on Asana's clock.
HISTORY_STORY_FIELDS = (
    "created_at",
    "created_by",
    "resource_subtype",
    "text",
    "custom_field",
    "new_enum_value",
    "old_enum_value",
    "new_approval_status",
    "old_approval_status",
)
# Asana's clock, learned from the `Date` header of its answers (RFC 7231, 1 s resolution), per API host:
# (Asana's time, time.monotonic() when it arrived). Asana's time now is that plus the monotonic time
# since — immune to this host's wall clock being stepped. Anything deciding about Asana data (reconcile
# windows, cursors, approval binding) uses Asana's time, never ours (ARCHITECTURE §6a).
_clock_offsets: dict[str, tuple[float, float]] = {}
CLOCK_OFFSET_MAX_AGE = 600.0
# Fields a PUT /tasks/{gid} may carry ([OAS] TaskRequestBase); anything else is refused before sending.
WRITABLE_TASK_FIELDS = frozenset(
    {
        "name",
        "notes",
        "html_notes",
        "due_on",
        "due_at",
        "start_on",
        "assignee",
        "completed",
        "approval_status",
        "resource_subtype",
        "custom_fields",
        "external",
        "liked",
    }
)


class ResultTruncated(errors.Invalid):
    """Asana truncated a very large result set (400 on the last page, §2.2): split the query."""


class DuplicateWebhook(errors.Forbidden):
    """403 "Duplicated webhook": one already exists for this resource + target (§6.1) → adopt it."""


def token_url_for(api_base_url: str) -> str:
    """The OAuth token endpoint on the API's host: https://app.asana.com/-/oauth_token (§1.2)."""
    parts = urlsplit(api_base_url)
    return f"{parts.scheme}://{parts.netloc}/-/oauth_token"


def approval_outcome(task: Mapping[str, Any]) -> str | None:
    """pending | approved | rejected | changes_requested for approval tasks, else None.

    `completed` is true for rejected and changes_requested too (§4.4): never read it for approvals.
    """
    if task.get("resource_subtype") != "approval":
        return None
    return task.get("approval_status") or "pending"


def is_approved(task: Mapping[str, Any]) -> bool:
    return approval_outcome(task) == "approved"


@dataclass
class CreatedWebhook:
    webhook: dict[str, Any]
    secret: str  # the X-Hook-Secret from the 201 body ("" if Asana ever stops echoing it there)


def _parse_asana_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


parse_asana_time = _parse_asana_time


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping) and "gid" in value:
        return str(value["gid"])
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def task_changes(desired: Mapping[str, Any], last_known: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `desired` that differ from `last_known` (custom fields compared one by one).

    `last_known` may be a task as read from Asana (custom_fields as a list of entries) or the last
    payload we wrote (custom_fields as {gid: wire value}).
    """
    changes: dict[str, Any] = {}
    for key, value in desired.items():
        if key == "custom_fields":
            known = last_known.get("custom_fields") or {}
            if isinstance(known, list):
                known = {str(e["gid"]): cf.wire_value_of(e) for e in known if e.get("gid")}
            cf_changes = {
                gid: v
                for gid, v in (value or {}).items()
                if gid not in known or _normalise(known[gid]) != _normalise(v)
            }
            if cf_changes:
                changes["custom_fields"] = cf_changes
        elif key not in last_known or _normalise(last_known[key]) != _normalise(value):
            changes[key] = value
    return changes
