"""Asana's clock and its task search, whose index lags behind writes (`reference/asana.md` §4.7).

- The simulator's time is its clock plus an offset (`set_clock_offset`); every timestamp it writes and
  the `Date` header of every answer (RFC 7231, as Asana sends it) use that time.
- `GET /workspaces/{gid}/tasks/search` ([OAS] searchTasksForWorkspace): premium only (402 on a free
  workspace), no offset pagination, at most `limit` (≤ 100) results, compact tasks unless `opt_fields`.
  Indexing takes "between 10 and 60 seconds": with `set_search_lag(seconds)` the search sees each task
  as it was `lag` seconds ago on the simulator's clock (a task created within the lag is not found; one
  renamed or moved within the lag is found as it was). `GET /tasks?project=` stays read-your-write.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from ..core import SimError, SimRequest, SimResponse, control
from .helpers import err, parse_time

SORT_KEYS = ("due_date", "created_at", "completed_at", "likes", "relevance", "modified_at")
PREMIUM_REQUIRED = (
    "Search is only available to premium users. Upgrade your workspace or join a premium team to search."
)


def _truthy(value: str, name: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise err(400, f"{name}: Not a valid boolean: {value}")


def _when(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise err(400, f"{name}: {value} is not a valid date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ts(iso: str | None) -> datetime | None:
    return parse_time(iso) if iso else None


class SearchMixin:
    """The clock controls, the lagging search index and the search route."""

    # ---- clock -----------------------------------------------------------------------------------
    @control
    def set_clock_offset(self, seconds: float) -> str:
        """Asana's clock = the simulator's clock + `seconds`; answers the new time (ISO-8601 UTC)."""
        self.clock_offset = float(seconds)
        return self.now_iso()

    @control
    def advance_clock(self, seconds: float) -> str:
        """Move Asana's clock forward by `seconds` (adds to the offset)."""
        self.clock_offset += float(seconds)
        self.index_tasks()
        return self.now_iso()

    @control
    def set_search_lag(self, seconds: float) -> float:
        """Search sees each task as it was `seconds` ago on the simulator's clock (§4.7: 10–60 s).

        The lag applies to changes made from now on (the index starts recording when a lag is set;
        0 stops it and search reads the tasks as they are)."""
        self.search_lag = float(seconds)
        if self.search_lag:
            self.index_tasks()
        else:
            self._index.clear()
        return self.search_lag

    @control
    def set_workspace_premium(self, workspace: str, premium: bool = True) -> bool:
        """A free workspace answers search with 402 Payment Required (§4.7)."""
        self.workspaces[workspace]["premium"] = bool(premium)
        return bool(premium)

    # ---- the index: every task's versions, with the simulator time each one began ------------------
    def index_tasks(self) -> None:
        """Record each task's state when it differs from the last recorded one (cheap for a sandbox).

        Called after every write request and every control while a lag is set (free otherwise); a task
        first seen here is dated by its `created_at`, so tasks seeded with the `add_*` helpers are
        indexed as of their creation."""
        if not self.search_lag:
            return
        now = self.now()
        for gid, task in self.tasks.items():
            versions = self._index.setdefault(gid, [])
            state = json.dumps(task, sort_keys=True, default=list)
            if versions and versions[-1][1] == state:
                continue
            began = now if versions else min(now, parse_time(task["created_at"]).timestamp())
            versions.append((began, state, copy.deepcopy(task)))
        for gid, versions in self._index.items():
            if gid not in self.tasks and versions[-1][2] is not None:
                versions.append((now, "", None))

    def _indexed(self, at: float) -> dict[str, dict]:
        """The tasks as the search index knows them at simulator time `at`."""
        out = {}
        for gid, versions in self._index.items():
            seen = [task for began, _state, task in versions if began <= at]
            if seen and seen[-1] is not None:
                out[gid] = seen[-1]
        return out

    # ---- GET /workspaces/{gid}/tasks/search --------------------------------------------------------
    def h_search(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        workspace = self._get(self.workspaces, "workspace", gid)
        self._require_member(gid, me)
        if not workspace.get("premium", True):
            raise err(402, PREMIUM_REQUIRED)
        limit = req.arg("limit")
        try:
            cap = int(limit) if limit is not None else 100
        except ValueError:
            raise err(400, "limit: Not a valid integer") from None
        if not 1 <= cap <= 100:
            raise err(400, "limit: Must be between 1 and 100")
        sort_by = req.arg("sort_by") or "modified_at"
        if sort_by not in SORT_KEYS:
            raise err(400, f"sort_by: Not a valid enum value: {sort_by}")
        ascending = _truthy(req.arg("sort_ascending") or "false", "sort_ascending")
        if self.search_lag:
            self.index_tasks()
            tasks = self._indexed(self.now() - self.search_lag)
        else:
            tasks = self.tasks
        found = [(g, t) for g, t in tasks.items() if t["workspace"] == gid and self._matches(req, t)]
        found.sort(key=lambda item: self._sort_value(item[1], sort_by), reverse=not ascending)
        items = [self.render_task(g, t) for g, t in found[:cap]]
        return self._list(req, items, "task", paginate=False)

    @staticmethod
    def _sort_value(task: dict, sort_by: str) -> Any:
        if sort_by == "due_date":
            return task.get("due_on") or "9999"
        if sort_by == "likes":
            return 0
        if sort_by == "relevance":
            return task["modified_at"]
        return task.get(sort_by) or ""

    def _matches(self, req: SimRequest, t: dict) -> bool:  # noqa: C901 - one filter per query parameter
        def ids(name: str) -> list[str] | None:
            value = req.arg(name)
            return None if value is None else [v.strip() for v in value.split(",") if v.strip()]

        text = req.arg("text")
        if text and text.lower() not in f"{t['name']}\n{t['notes']}".lower():
            return False
        for name, actual in (
            ("created_by", [t.get("created_by")]),
            ("assignee", [t.get("assignee")]),
            ("projects", t["projects"]),
            ("sections", list(t["sections"].values())),
            ("followers", t.get("followers") or []),
            ("tags", t.get("tags") or []),
        ):
            wanted_any, wanted_not = ids(f"{name}.any"), ids(f"{name}.not")
            if wanted_any is not None and not set(wanted_any) & set(filter(None, actual)):
                return False
            if wanted_not is not None and set(wanted_not) & set(filter(None, actual)):
                return False
            wanted_all = ids(f"{name}.all")
            if wanted_all is not None and not set(wanted_all) <= set(actual):
                return False
        for name in ("created_at", "modified_at", "completed_at"):
            value = _ts(t.get(name))
            after, before = req.arg(f"{name}.after"), req.arg(f"{name}.before")
            if after and (value is None or value <= _when(after, f"{name}.after")):
                return False
            if before and (value is None or value >= _when(before, f"{name}.before")):
                return False
        for name, field in (("created_on", "created_at"), ("modified_on", "modified_at")):
            day = (t.get(field) or "")[:10]
            if req.arg(name) and day != req.arg(name):
                return False
            if req.arg(f"{name}.after") and not day > req.arg(f"{name}.after"):
                return False
            if req.arg(f"{name}.before") and not day < req.arg(f"{name}.before"):
                return False
        due = t.get("due_on") or ""
        if req.arg("due_on") and due != req.arg("due_on"):
            return False
        if req.arg("due_on.after") and not (due and due > req.arg("due_on.after")):
            return False
        if req.arg("due_on.before") and not (due and due < req.arg("due_on.before")):
            return False
        if req.arg("completed") is not None and t["completed"] != _truthy(req.arg("completed"), "completed"):
            return False
        if req.arg("is_subtask") is not None and bool(t.get("parent")) != _truthy(
            req.arg("is_subtask"), "is_subtask"
        ):
            return False
        if req.arg("resource_subtype") and t["resource_subtype"] != req.arg("resource_subtype"):
            return False
        return self._custom_field_filters(req, t)

    def _custom_field_filters(self, req: SimRequest, t: dict) -> bool:
        """`custom_fields.{gid}.{is_set,value,starts_with,ends_with,contains,less_than,greater_than,
        before,after}` ([OAS] searchTasksForWorkspace description table)."""
        for key, values in req.query.items():
            parts = key.split(".")
            if len(parts) != 3 or parts[0] != "custom_fields":
                continue
            field_gid, op, raw = parts[1], parts[2], values[0]
            field = self.custom_fields.get(field_gid)
            if field is None:
                raise err(400, f"{key}: Unknown custom field: {field_gid}")
            value = t["custom_values"].get(field_gid)
            if field["type"] == "multi_enum" and op != "is_set":
                raise err(400, f"{key}: Searching multi-enum custom fields is not supported")
            if op == "is_set":
                if (value not in (None, [], "")) != _truthy(raw, key):
                    return False
            elif value is None:
                return False
            elif op == "value":
                if field["type"] == "number":
                    if float(value) != float(raw):
                        return False
                elif str(value) != raw:
                    return False
            elif op in ("starts_with", "ends_with", "contains") and field["type"] == "text":
                low, needle = str(value).lower(), raw.lower()
                ok = {
                    "starts_with": low.startswith(needle),
                    "ends_with": low.endswith(needle),
                    "contains": needle in low,
                }[op]
                if not ok:
                    return False
            elif op in ("less_than", "greater_than") and field["type"] == "number":
                if (float(value) < float(raw)) != (op == "less_than") or float(value) == float(raw):
                    return False
            elif op in ("before", "after") and field["type"] == "date":
                if (value < raw) != (op == "before") or value == raw:
                    return False
            else:
                raise SimError(400, {"errors": [{"message": f"{key}: Not supported for this field type"}]})
        return True
