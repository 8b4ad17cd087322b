"""What Asana refuses in a task write (`reference/asana.md` §4.1–4.4; [OAS] TaskRequestBase, TaskBase).

Errors are Asana's envelope with a `<field>: <problem>` message (§2.2, e.g. "project: Missing input").
The exact wording of each problem is the sandbox's (UNVERIFIED against live Asana; SPEC_GAPS.md
ASANA-SIM-ERROR-WORDING): clients must branch on the status and the field name, never on the text.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from .helpers import err

APPROVAL_STATUSES = ("pending", "approved", "rejected", "changes_requested")
# [OAS] TaskBase.resource_subtype; `section` is obsolete and `custom` needs a custom type.
WRITABLE_SUBTYPES = ("default_task", "milestone", "approval")
# [OAS] TaskBase/TaskResponse properties marked readOnly: a write naming them is refused.
READ_ONLY = frozenset(
    {
        "gid",
        "resource_type",
        "created_at",
        "created_by",
        "modified_at",
        "completed_at",
        "completed_by",
        "num_subtasks",
        "num_likes",
        "num_hearts",
        "likes",
        "hearts",
        "hearted",
        "dependents",
        "is_rendered_as_separator",
        "permalink_url",
        "actual_time_minutes",
        "assigned_by",
    }
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def check_task_write(data: dict, task: dict | None, users: dict) -> None:
    """Raise Asana's 400 for a task write it would refuse; `task` is None on create."""
    read_only = sorted(READ_ONLY & set(data))
    if read_only:
        raise err(400, f"{read_only[0]}: Cannot write this property")
    if "name" in data and not isinstance(data["name"], str):
        raise err(400, "name: Value is not a string")
    for key in ("notes", "html_notes"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise err(400, f"{key}: Value is not a string")
    if isinstance(data.get("html_notes"), str) and not data["html_notes"].strip().startswith("<body>"):
        raise err(400, "html_notes: XML is invalid: the text must be wrapped in <body>")
    for key in ("due_on", "start_on"):
        if data.get(key) is not None and not _is_date(data[key]):
            raise err(400, f"{key}: Not a valid date: {data[key]!r} (YYYY-MM-DD)")
    for key in ("due_at", "start_at"):
        if data.get(key) is not None and not _is_datetime(data[key]):
            raise err(400, f"{key}: Not a valid date-time: {data[key]!r}")
    if data.get("due_on") is not None and data.get("due_at") is not None:
        raise err(400, "due_on: You may only specify one of due_on and due_at")
    has_due = (
        data.get("due_on") or data.get("due_at") or (task and (task.get("due_on") or task.get("due_at")))
    )
    if data.get("start_on") is not None and not has_due:
        raise err(400, "start_on: A start date requires a due date")
    if "completed" in data and not isinstance(data["completed"], bool):
        raise err(400, "completed: Value is not a boolean")
    subtype = data.get("resource_subtype")
    if subtype is not None and subtype not in WRITABLE_SUBTYPES:
        raise err(
            400,
            f"resource_subtype: Invalid value {subtype!r}; expected one of {', '.join(WRITABLE_SUBTYPES)}",
        )
    status = data.get("approval_status")
    if status is not None:
        if status not in APPROVAL_STATUSES:
            raise err(
                400,
                f"approval_status: Invalid value {status!r}; expected one of {', '.join(APPROVAL_STATUSES)}",
            )
        final_subtype = subtype or (task or {}).get("resource_subtype") or "default_task"
        if final_subtype != "approval":
            raise err(400, "approval_status: Can only be set on approval tasks (resource_subtype approval)")
    assignee = data.get("assignee")
    if assignee not in (None, "me") and assignee not in users:
        known = any(u["email"].lower() == str(assignee).lower() for u in users.values())
        if not known:
            raise err(400, f"assignee: Unknown object: {assignee}")
    external = data.get("external")
    if external is not None:
        if not isinstance(external, dict) or set(external) - {"gid", "data"}:
            raise err(400, "external: Must be an object with gid and data")
        if len(str(external.get("gid") or "")) > 1024 or len(str(external.get("data") or "")) > 32768:
            raise err(400, "external: gid is limited to 1024 characters and data to 32768")
