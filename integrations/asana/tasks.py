"""Asana tasks and their stories (reference/asana.md §4), as methods of AsanaClient."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from integrations.asana import fields as cf
from integrations.asana.shapes import (
    HISTORY_STORY_FIELDS,
    PAGE_SIZE,
    STORY_FIELDS,
    TASK_FIELDS,
    WRITABLE_TASK_FIELDS,
    _parse_asana_time,
    task_changes,
)
from integrations.base import errors

log = logging.getLogger(__name__)


class TasksMixin:
    """Methods of AsanaClient (integrations/asana/client.py): they call its `_call` and `iter_pages`."""

    # ---- tasks (§4) -----------------------------------------------------------------------------
    def get_task(self, task_gid: str, *, fields: Iterable[str] = TASK_FIELDS) -> dict[str, Any]:
        """GET /tasks/{gid} — [OAS] getTask."""
        return self._call("GET", f"/tasks/{task_gid}", fields=fields)

    def iter_project_tasks(
        self,
        project_gid: str,
        *,
        modified_since: datetime | str | None = None,
        completed_since: datetime | None = None,
        fields: Iterable[str] = TASK_FIELDS,
    ) -> Iterator[dict[str, Any]]:
        """GET /tasks?project=&modified_since= — read-your-write change polling on any plan (§4.7).
        `completed_since` (a date-time): only the tasks not completed, or completed since ([OAS] getTasks)."""
        params: dict[str, Any] = {"project": project_gid}
        if completed_since is not None:
            params["completed_since"] = completed_since.isoformat()
        if modified_since is not None:
            params["modified_since"] = (
                modified_since.isoformat() if isinstance(modified_since, datetime) else modified_since
            )
        return self.iter_pages("/tasks", fields=fields, params=params)

    def find_task_by_external(self, external_gid: str, *, fields: Iterable[str]) -> dict[str, Any] | None:
        """GET /tasks/external:<gid> — a task by the app-private external id (OAuth only, §4.5)."""
        try:
            return self._call("GET", f"/tasks/external:{quote(external_gid, safe='')}", fields=fields)
        except errors.NotFound:
            return None

    def search_tasks(
        self,
        *,
        created_by: str | None = None,
        created_after: datetime | None = None,
        fields: Iterable[str],
        workspace_gid: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """GET /workspaces/{gid}/tasks/search (§4.7): premium only (402 otherwise), eventually consistent
        (10–60 s behind writes), no pagination — walked by created_at with `created_at.after`."""
        params: dict[str, Any] = {"sort_by": "created_at", "sort_ascending": "true"}  # no limit param (spec)
        if created_by:
            params["created_by.any"] = created_by
        params.update(extra or {})
        workspace = workspace_gid or self.workspace_gid
        out: list[dict[str, Any]] = []
        after = created_after
        for _page in range(50):  # a bounded walk: a reconcile window holds few of our own tasks
            if after is not None:
                params["created_at.after"] = after.isoformat()
            page = self._call(
                "GET", f"/workspaces/{workspace}/tasks/search", fields=(*fields, "created_at"), params=params
            )
            out.extend(page or [])
            if not page or len(page) < PAGE_SIZE:
                return out
            newest = max((t.get("created_at") or "" for t in page), default="")
            parsed = _parse_asana_time(newest)
            if parsed is None or (after is not None and parsed <= after):
                return out
            after = parsed
        return out

    def iter_stories(self, task_gid: str, *, fields: Iterable[str] = HISTORY_STORY_FIELDS):
        """GET /tasks/{gid}/stories — the task's history, oldest first ([OAS] getStoriesForTask)."""
        return self.iter_pages(f"/tasks/{task_gid}/stories", fields=fields)

    def create_task(
        self,
        *,
        name: str,
        project_gid: str,
        section_gid: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        notes: str | None = None,
        due_on: str | None = None,
        assignee: str | None = None,
        approval: bool = False,
        extra: Mapping[str, Any] | None = None,
        fields: Iterable[str] = TASK_FIELDS,
    ) -> dict[str, Any]:
        """POST /tasks — project, section (via `memberships`) and custom field values in ONE call (§4.1).

        `custom_fields` must already be wire values (see fields.encode_custom_fields). Never retried
        blindly: a timeout or 5xx raises with outcome_unknown, and the caller reconciles (§4.6).
        """
        data: dict[str, Any] = {"name": name, "projects": [project_gid]}
        if section_gid:
            data["memberships"] = [{"project": project_gid, "section": section_gid}]
        if custom_fields:
            data["custom_fields"] = dict(custom_fields)
        if notes is not None:
            data["notes"] = notes
        if due_on:
            data["due_on"] = due_on
        if assignee:
            data["assignee"] = assignee
        if approval:
            data["resource_subtype"] = "approval"
        data.update(extra or {})
        try:
            return self._write_task("POST", "/tasks", fields=fields, data=data)
        except errors.Invalid as exc:
            # reference §4.1 marks section placement through `memberships` UNVERIFIED (the spec calls it
            # read-only). A 400 about it created nothing, so create without it and place the task after.
            if "memberships" not in data or "membership" not in (exc.message or "").lower():
                raise
            log.warning(
                "asana: memberships refused on create (%s); placing the task with addTask", exc.message
            )
            data.pop("memberships")
            task = self._write_task("POST", "/tasks", fields=fields, data=data)
            self.move_to_section(task["gid"], section_gid)
            return task

    def update_task(
        self,
        task_gid: str,
        changes: Mapping[str, Any] | None = None,
        *,
        desired: Mapping[str, Any] | None = None,
        last_known: Mapping[str, Any] | None = None,
        fields: Iterable[str] = TASK_FIELDS,
    ) -> dict[str, Any] | None:
        """PUT /tasks/{gid} with only the changed fields (§4.2: others' edits survive); None = no call.

        Pass either `changes`, or `desired` plus `last_known` (a task as read, or the last payload written).
        """
        if changes is None:
            changes = task_changes(desired or {}, last_known or {})
        unknown = set(changes) - WRITABLE_TASK_FIELDS
        if unknown:
            raise errors.ConfigurationError(f"not writable with PUT /tasks: {sorted(unknown)}")
        if not changes:
            return None
        return self._write_task("PUT", f"/tasks/{task_gid}", fields=fields, data=dict(changes))

    def _write_task(self, method: str, path: str, *, fields: Iterable[str], data: dict[str, Any]) -> Any:
        """POST/PUT a task; a 400 about a date custom field is tried once with the other date shape
        (fields.date_shape_fallback, docs/vendor-facts.md). A 400 created and changed nothing."""
        try:
            return self._call(method, path, fields=fields, data=data)
        except errors.Invalid as exc:
            sent = data.get("custom_fields") or {}
            message = f"{exc.message} {exc.body_excerpt}"
            other = cf.date_shape_fallback(sent, message) if exc.status == 400 and sent else None
            if other is None:
                raise
            try:
                result = self._call(method, path, fields=fields, data={**data, "custom_fields": other})
            except errors.Invalid as again:
                log.warning("asana: the other date shape was refused too (%s)", again.message)
                raise exc from again
            cf.date_shape_worked(sent, other, exc.message)
            return result

    def complete_task(self, task_gid: str, completed: bool = True) -> dict[str, Any]:
        return self._call("PUT", f"/tasks/{task_gid}", fields=TASK_FIELDS, data={"completed": completed})

    def uncomplete_task(self, task_gid: str) -> dict[str, Any]:
        return self.complete_task(task_gid, completed=False)

    def move_to_section(self, task_gid: str, section_gid: str) -> None:
        """POST /sections/{gid}/addTask — also removes it from the project's other sections (§4.1)."""
        self._call("POST", f"/sections/{section_gid}/addTask", data={"task": task_gid})

    def add_to_project(self, task_gid: str, project_gid: str, section_gid: str | None = None) -> None:
        """POST /tasks/{gid}/addProject — the documented fallback for placing a task in a section."""
        data = {"project": project_gid, **({"section": section_gid} if section_gid else {})}
        self._call("POST", f"/tasks/{task_gid}/addProject", data=data)

    def add_comment(self, task_gid: str, text: str) -> dict[str, Any]:
        """POST /tasks/{gid}/stories {text} — [OAS] createStoryForTask."""
        return self._call("POST", f"/tasks/{task_gid}/stories", fields=STORY_FIELDS, data={"text": text})

    # ---- subtasks and teams (finance controls: approval levels) ----------------------------------
    def subtasks(self, task_gid: str, *, fields: Iterable[str] = TASK_FIELDS) -> list[dict[str, Any]]:
        """GET /tasks/{gid}/subtasks — [OAS] getSubtasksForTask (every page)."""
        return list(self.iter_pages(f"/tasks/{task_gid}/subtasks", fields=fields))

    def create_subtask(
        self, parent_gid: str, data: Mapping[str, Any], *, fields: Iterable[str] = TASK_FIELDS
    ) -> dict[str, Any]:
        """POST /tasks/{gid}/subtasks — [OAS] createSubtaskForTask (e.g. resource_subtype approval)."""
        return self._call("POST", f"/tasks/{parent_gid}/subtasks", fields=fields, data=dict(data))

    def team_user_gids(self, team_gid: str) -> set[str]:
        """GET /teams/{gid}/users — [OAS] getUsersForTeam (reference/asana.md §7): no `limit` is declared
        for it, so one call (Asana returns the team's users compact, up to 2000)."""
        users = self._call("GET", f"/teams/{team_gid}/users", fields=("name",)) or []
        return {str(u.get("gid")) for u in users}
