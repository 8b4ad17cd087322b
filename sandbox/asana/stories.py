"""Stories (a task's history) and the controls that act as a person in the Asana UI.

Every change to a task — by the API or by a person — leaves a story with Asana's time in `created_at`,
which is how a client learns *when* something happened on Asana's clock ([OAS] StoryResponse;
`reference/asana.md` §4.2, §4.4). Story `resource_subtype` values follow what integrators read from
live Asana (`marked_complete`, `marked_incomplete`, `name_changed`, `notes_changed`,
`due_date_changed`, `<type>_custom_field_changed`, `added_to_project`, `removed_from_project`,
`section_changed`, `assigned`, `comment_added`). Approval changes are stories with
`new_approval_status`/`old_approval_status` ([OAS] StoryResponse) and the subtypes `approved`,
`rejected`, `changes_requested` (back to pending: `marked_incomplete`); those subtype names are
UNVERIFIED (see SPEC_GAPS.md, ASANA-SIM-APPROVAL-STORIES).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from ..core import SimError, SimRequest, SimResponse, control
from .helpers import err

APPROVAL_SUBTYPES = {
    "approved": "approved",
    "rejected": "rejected",
    "changes_requested": "changes_requested",
    "pending": "marked_incomplete",
}
APPROVAL_TEXT = {
    "approved": "approved this task",
    "rejected": "rejected this task",
    "changes_requested": "requested changes to this task",
    "pending": "marked this task as pending approval",
}
COMMENT_TYPES = {"comment_added"}


class StoriesMixin:
    """Story storage and rendering, `GET/POST /tasks/{gid}/stories`, and the `person_*` controls."""

    # ---- storage ---------------------------------------------------------------------------------
    def add_story(self, task_gid: str, user: str | None, subtype: str, text: str, **extra: Any) -> str:
        """Record one story on a task (time: the simulator's clock) and emit its `added` event."""
        gid = self.new_gid()
        self.stories[gid] = {
            "task": task_gid,
            "subtype": subtype,
            "text": text,
            "created_by": user,
            "created_at": self.now_iso(),
            "extra": extra,
            "by_person": self._acting_in_ui,
        }
        self._emit(
            gid,
            user,
            "added",
            resource_type="story",
            subtype=subtype,
            parent=self._compact("task", task_gid),
            task_gid=task_gid,
        )
        return gid

    def render_story(self, gid: str) -> dict:
        s = self.stories[gid]
        out = {
            "gid": gid,
            "resource_type": "story",
            "created_at": s["created_at"],
            "resource_subtype": s["subtype"],
            "type": "comment" if s["subtype"] in COMMENT_TYPES else "system",
            "text": s["text"],
            "source": "web" if s.get("by_person") else "api",
            "target": {
                "gid": s["task"],
                "resource_type": "task",
                "name": self.tasks.get(s["task"], {}).get("name", ""),
                "resource_subtype": self.tasks.get(s["task"], {}).get("resource_subtype", "default_task"),
            },
        }
        if s["created_by"]:
            out["created_by"] = self._compact("user", s["created_by"])
        if s["subtype"] in COMMENT_TYPES:
            out.update(is_editable=True, is_edited=False, is_pinned=False)
        out.update(s.get("extra") or {})
        return out

    def comments(self, task_gid: str) -> list[str]:
        """The text of the task's comments (`comment_added` stories), oldest first."""
        return [
            s["text"]
            for s in self.stories.values()
            if s["task"] == task_gid and s["subtype"] in COMMENT_TYPES
        ]

    def task_stories(self, task_gid: str) -> list[str]:
        """The task's stories, oldest first (Asana's order for `GET /tasks/{gid}/stories`)."""
        return [g for g, s in self.stories.items() if s["task"] == task_gid]

    # ---- the stories a change leaves (called by _apply) -----------------------------------------
    def _field_story(self, task_gid: str, user: str | None, field_gid: str, old: Any, new: Any) -> None:
        f = self.custom_fields[field_gid]
        kind = f["type"]
        extra: dict[str, Any] = {"custom_field": self._field_compact(field_gid)}
        if kind == "enum":
            if old:
                extra["old_enum_value"] = self._option(old)
            if new:
                extra["new_enum_value"] = self._option(new)
            shown = self.enum_options[new]["name"] if new else "(none)"
        elif kind == "multi_enum":
            extra["old_multi_enum_values"] = [self._option(o) for o in old or []]
            extra["new_multi_enum_values"] = [self._option(o) for o in new or []]
            shown = ", ".join(self.enum_options[o]["name"] for o in new or []) or "(none)"
        elif kind == "text":
            if old is not None:
                extra["old_text_value"] = old
            if new is not None:
                extra["new_text_value"] = new
            shown = new or "(none)"
        elif kind == "number":
            extra["old_number_value"] = old
            if new is not None:
                extra["new_number_value"] = new
            shown = "(none)" if new is None else str(new)
        elif kind == "date":
            if old:
                extra["old_date_value"] = {"due_on": old}
            if new:
                extra["new_date_value"] = {"due_on": new}
            shown = new or "(none)"
        elif kind == "people":
            extra["old_people_value"] = [self._compact("user", u) for u in old or []]
            extra["new_people_value"] = [self._compact("user", u) for u in new or []]
            shown = ", ".join(self.users[u]["name"] for u in new or []) or "(none)"
        else:
            shown = str(new)
        self.add_story(
            task_gid, user, f"{kind}_custom_field_changed", f"changed {f['name']} to {shown}", **extra
        )

    def _change_stories(
        self, task_gid: str, user: str | None, before: dict, after: dict, changed_fields: dict
    ) -> None:
        """Stories for what `_apply` changed: `before`/`after` are the task's plain fields."""
        if before["name"] != after["name"]:
            self.add_story(
                task_gid,
                user,
                "name_changed",
                f'changed the name to "{after["name"]}"',
                old_name=before["name"],
                new_name=after["name"],
            )
        if before["notes"] != after["notes"]:
            self.add_story(task_gid, user, "notes_changed", "changed the description")
        if before["due_on"] != after["due_on"]:
            self.add_story(
                task_gid,
                user,
                "due_date_changed",
                f"changed the due date to {after['due_on'] or '(none)'}",
                old_dates={"due_on": before["due_on"], "start_on": None, "due_at": None},
                new_dates={"due_on": after["due_on"], "start_on": None, "due_at": None},
            )
        if before["assignee"] != after["assignee"] and after["assignee"]:
            self.add_story(
                task_gid,
                user,
                "assigned",
                f"assigned to {self.users[after['assignee']]['name']}",
                assignee=self._compact("user", after["assignee"]),
            )
        approval = after["resource_subtype"] == "approval"
        if approval and before["approval_status"] != after["approval_status"] and before["approval_status"]:
            status = after["approval_status"]
            self.add_story(
                task_gid,
                user,
                APPROVAL_SUBTYPES[status],
                APPROVAL_TEXT[status],
                old_approval_status=before["approval_status"],
                new_approval_status=status,
            )
        elif not approval and before["completed"] != after["completed"]:
            if after["completed"]:
                self.add_story(task_gid, user, "marked_complete", "marked this task complete")
            else:
                self.add_story(task_gid, user, "marked_incomplete", "marked incomplete")
        for field_gid, (old, new) in changed_fields.items():
            self._field_story(task_gid, user, field_gid, old, new)

    # ---- routes ----------------------------------------------------------------------------------
    def h_stories(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        return self._list(req, [self.render_story(s) for s in self.task_stories(gid)], "story")

    def h_get_story(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        story = self._get(self.stories, "story", gid)
        self._require_member(self.tasks[story["task"]]["workspace"], me)
        return self._one(req, self.render_story(gid))

    def h_story(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        data = self._data(req)
        text = data.get("text")
        if not text and not data.get("html_text"):
            raise err(400, "text: Missing input")
        story_gid = self._comment(gid, me, text or data["html_text"])
        return self._one(req, self.render_story(story_gid), 201)

    def _comment(self, task_gid: str, user: str | None, text: str) -> str:
        # The story a comment generates changes the task's modified_at (§4.2).
        self.tasks[task_gid]["modified_at"] = self.now_iso()
        return self.add_story(task_gid, user, "comment_added", text)

    # ---- acting as a person ----------------------------------------------------------------------
    @contextmanager
    def _as_person(self):
        """Stories made inside are a person's in the UI (`source: web`), not the API's."""
        self._acting_in_ui = True
        try:
            yield
        finally:
            self._acting_in_ui = False

    def _person(self, gid: str, user: str | None) -> str:
        """The acting person: `user`, or the workspace's first active non-bot member."""
        task = self.tasks.get(gid)
        if task is None:
            raise SimError(404, {"message": f"no task {gid}"})
        if user:
            if user not in self.users:
                raise SimError(400, {"message": f"no user {user}"})
            return user
        if self.default_person and (task["workspace"], self.default_person) in self.memberships:
            return self.default_person
        bots = {info["user"] for info in self.tokens.values()}
        people = sorted(
            u for (ws, u), m in self.memberships.items() if ws == task["workspace"] and m["is_active"]
        )
        return next((u for u in people if u not in bots), people[0] if people else None)

    def _person_change(self, gid: str, user: str | None, changes: dict) -> dict:
        person = self._person(gid, user)
        with self._as_person():
            changed = self._apply(self.tasks[gid], changes, person, gid)
        return {"task": gid, "user": person, "changed": changed, "at": self.tasks[gid]["modified_at"]}

    @control
    def person_edit_task(
        self,
        gid: str,
        user: str | None = None,
        name: str | None = None,
        notes: str | None = None,
        custom_fields: dict[str, Any] | None = None,
        due_on: str | None = None,
        assignee: str | None = None,
    ) -> dict:
        """A person edits the task in the UI: stories + `changed` events, attributed to `user`."""
        changes: dict[str, Any] = {}
        for key, value in (("name", name), ("notes", notes), ("due_on", due_on), ("assignee", assignee)):
            if value is not None:
                changes[key] = value
        if custom_fields:
            changes["custom_fields"] = dict(custom_fields)
        return self._person_change(gid, user, changes)

    @control
    def person_move_task(
        self, gid: str, project: str, section: str | None = None, user: str | None = None
    ) -> dict:
        """A person moves the task to another project: removed from its projects, added to `project`."""
        person = self._person(gid, user)
        if project not in self.projects:
            raise SimError(400, {"message": f"no project {project}"})
        if section and self.sections.get(section, {}).get("project") != project:
            raise SimError(400, {"message": f"section {section} is not in project {project}"})
        task = self.tasks[gid]
        with self._as_person():
            for old in [p for p in task["projects"] if p != project]:
                self._remove_from_project(gid, old, person)
            self._add_to_project(gid, project, section, person)
        return {"task": gid, "user": person, "projects": list(task["projects"])}

    def _status_control(self, gid: str, user: str | None, status: str) -> dict:
        if self.tasks.get(gid, {}).get("resource_subtype") != "approval":
            raise SimError(400, {"message": f"task {gid} is not an approval task"})
        return self._person_change(gid, user, {"approval_status": status})

    @control
    def person_approve(self, gid: str, user: str | None = None) -> dict:
        """A person approves an approval task (approval_status=approved, completed, an `approved` story)."""
        return self._status_control(gid, user, "approved")

    @control
    def person_reject(self, gid: str, user: str | None = None) -> dict:
        return self._status_control(gid, user, "rejected")

    @control
    def person_request_changes(self, gid: str, user: str | None = None) -> dict:
        return self._status_control(gid, user, "changes_requested")

    @control
    def person_complete(self, gid: str, user: str | None = None) -> dict:
        """Completing an approval task approves it (§4.4)."""
        return self._person_change(gid, user, {"completed": True})

    @control
    def person_uncomplete(self, gid: str, user: str | None = None) -> dict:
        return self._person_change(gid, user, {"completed": False})

    @control
    def person_comment(self, gid: str, text: str, user: str | None = None) -> dict:
        person = self._person(gid, user)
        with self._as_person():
            story = self._comment(gid, person, text)
        return {"task": gid, "user": person, "story": story, "at": self.stories[story]["created_at"]}

    @control
    def person_delete_task(self, gid: str, user: str | None = None) -> dict:
        """A person deletes the task: it answers 404 from then on; watchers get a `deleted` event."""
        person = self._person(gid, user)
        with self._as_person():
            self._delete_task(gid, person)
        return {"task": gid, "user": person}

    def _delete_task(self, gid: str, user: str | None) -> None:
        task = self.tasks[gid]
        for sub in [g for g, t in self.tasks.items() if t.get("parent") == gid]:
            self._delete_task(sub, user)
        self._emit(gid, user, "deleted")
        del self.tasks[gid]
        for story in [s for s, v in self.stories.items() if v["task"] == gid]:
            del self.stories[story]
        self.deleted_tasks[gid] = task
