"""Asana's wording, envelopes and small pure helpers shared by the simulator's modules (§2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ..core import SimError

HELP = (
    "For more information on API status codes and how to handle them, read the docs on errors: "
    "https://developers.asana.com/docs/errors"
)
RATE_LIMIT_MESSAGE = (
    "You've made too many requests and hit a rate limit. Please retry after the given amount of time."
)
DUPLICATE_WEBHOOK = (
    "Duplicated webhook. You already have an existing webhook for the given resource and "
    "target. Delete the old one before creating another."
)
# Wording chosen by the sandbox (UNVERIFIED against live Asana; clients must not parse it beyond keywords).
HANDSHAKE_FAILED = "The remote server did not respond with the handshake secret."
OFFSET_EXPIRED = "offset: Your pagination token has expired."
TRUNCATED = "The result is too large. This data set was truncated; please narrow your query."
COMPACT = {
    "task": ("name", "resource_subtype"),
    "project": ("name",),
    "section": ("name",),
    "user": ("name",),
    "custom_field_setting": (),
    "webhook": ("active", "resource", "target"),
    "workspace": ("name",),
    "workspace_membership": ("user", "workspace"),
    "story": ("created_at", "created_by", "resource_subtype", "text"),
    "team_membership": ("user", "team", "is_guest"),
    "attachment": ("name", "resource_subtype"),
}
# The task fields whose changes leave stories (stories.py).
PLAIN_FIELDS = ("name", "notes", "due_on", "assignee", "completed", "approval_status", "resource_subtype")
TASK_WRITABLE = {
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


def err(status: int, message: str, phrase: str | None = None) -> SimError:
    item = {"message": message, "help": HELP}
    if phrase:
        item["phrase"] = phrase
    return SimError(status, {"errors": [item]})


def tree(opt_fields: str | None) -> dict[str, dict] | None:
    if opt_fields is None:
        return None
    tree: dict[str, dict] = {}
    for path in filter(None, (p.strip() for p in opt_fields.split(","))):
        node = tree
        for part in path.split("."):
            node = node.setdefault(part, {})
    return tree


def pick(obj: Any, tree: dict[str, dict]) -> Any:
    """opt_fields semantics: only the named fields plus `gid` (§2.4 [DD:input-output-options])."""
    if isinstance(obj, list):
        return [pick(o, tree) for o in obj]
    if not isinstance(obj, dict):
        return obj
    out = {"gid": obj["gid"]} if "gid" in obj else {}
    for key, sub in tree.items():
        if key in obj:
            out[key] = pick(obj[key], sub) if sub and obj[key] is not None else obj[key]
    return out


def passes(rule: dict, event: dict) -> bool:
    """Webhook filter semantics (§6.1): every stated key must match; `fields` only for changes."""
    resource = event["resource"]
    if rule.get("resource_type") and rule["resource_type"] != resource["resource_type"]:
        return False
    if rule.get("resource_subtype") and rule["resource_subtype"] != resource.get("resource_subtype"):
        return False
    if rule.get("action") and rule["action"] != event["action"]:
        return False
    return not (rule.get("fields") and (event.get("change") or {}).get("field") not in rule["fields"])


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str, name: str = "modified_since") -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise err(400, f"{name}: {value} is not a valid date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
