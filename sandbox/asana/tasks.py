"""Tasks: list, read, create, update (with stories), containers, delete (§4)."""

from __future__ import annotations

import json
import re
from html import unescape

from ..core import SimError, SimRequest, SimResponse
from .helpers import (
    PLAIN_FIELDS,
    TASK_WRITABLE,
)
from .helpers import err as _err
from .helpers import parse_time as _parse_time
from .validation import check_task_write


class TasksMixin:
    # ---- tasks (§4) ------------------------------------------------------------------------------
    def h_tasks(self, req: SimRequest) -> SimResponse:
        project = req.arg("project")
        if not project:
            raise _err(400, "project: Missing input")
        self._readable_project(req, project)
        since = req.arg("modified_since")
        cutoff = _parse_time(since) if since else None
        items = [
            self.render_task(g)
            for g, t in sorted(self.tasks.items())
            if project in t["projects"] and (cutoff is None or _parse_time(t["modified_at"]) >= cutoff)
        ]
        return self._list(req, self._completed_since(req, items), "task")

    def h_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        return self._one(req, self.render_task(gid))

    def h_create_task(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        data = self._data(req)
        projects = [str(p) for p in data.get("projects") or []]
        sections: dict[str, str | None] = {p: None for p in projects}
        for m in data.get("memberships") or []:
            project, section = str(m.get("project") or ""), m.get("section")
            if section and self.sections.get(section, {}).get("project") != project:
                raise _err(400, f"memberships: section {section} is not in project {project}")
            sections[project] = section
        parent = str(data["parent"]) if data.get("parent") else None
        if parent:
            self._require_member(self._get(self.tasks, "parent", parent)["workspace"], me)
        if not sections and not data.get("workspace") and not parent:
            # "Every task is required to be created in a specific workspace" (§4.1).
            raise _err(400, "workspace: Missing input")
        for project in sections:
            self._readable_project(req, project)
        check_task_write(data, None, self.users)
        unknown = (
            set(data)
            - TASK_WRITABLE
            - {"projects", "memberships", "workspace", "followers", "tags", "parent"}
        )
        if unknown:
            raise _err(400, f"{sorted(unknown)[0]}: Unknown field")
        if sections:
            workspace = self.projects[next(iter(sections))]["workspace"]
        elif parent:
            workspace = self.tasks[parent]["workspace"]
        else:
            workspace = str(data["workspace"])
            self._get(self.workspaces, "workspace", workspace)
            self._require_member(workspace, me)
        followers = [self._user_by_email(f) if "@" in str(f) else str(f) for f in data.get("followers") or []]
        if any(f not in self.users for f in followers):
            raise _err(400, "followers: Unknown object")
        gid = self.new_gid()
        task = self._blank_task(workspace, data.get("name") or "", sections, created_by=me, parent=parent)
        task["followers"] = list(dict.fromkeys([me, *followers]))
        task["tags"] = [str(t) for t in data.get("tags") or []]
        try:
            self.tasks[gid] = task
            self._apply(task, {k: v for k, v in data.items() if k in TASK_WRITABLE}, me, gid, emit=False)
        except SimError:
            del self.tasks[gid]
            raise
        for project in task["projects"]:
            self._emit(gid, me, "added", parent=self._compact("project", project))
        return self._one(req, self.render_task(gid), 201)

    def _default_section(self, project: str) -> str:
        """Every task in a project sits in a section; projects without one get an untitled one."""
        if not self.projects[project]["sections"]:
            self.add_section(project, "Untitled section")
        return self.projects[project]["sections"][0]

    def _blank_task(
        self,
        workspace: str,
        name: str,
        sections: dict[str, str | None],
        *,
        created_by: str | None = None,
        parent: str | None = None,
    ) -> dict:
        sections = {p: s or self._default_section(p) for p, s in sections.items()}
        now = self.now_iso()
        return {
            "name": name,
            "notes": "",
            "resource_subtype": "default_task",
            "approval_status": None,
            "completed": False,
            "completed_at": None,
            "created_at": now,
            "modified_at": now,
            "due_on": None,
            "assignee": None,
            "created_by": created_by,
            "completed_by": None,
            "parent": parent,
            "followers": [created_by] if created_by else [],
            "tags": [],
            "external": None,
            "workspace": workspace,
            "projects": list(sections),
            "sections": dict(sections),
            "custom_values": {},
        }

    def _apply(self, task: dict, data: dict, user: str | None, gid: str, emit: bool = True) -> list[str]:
        """Apply writable fields; return the changed field names (events + modified_at)."""
        changed: list[str] = []
        before = {k: task.get(k) for k in PLAIN_FIELDS}
        enabled = self._task_fields(task)
        new_values = {}
        for field_gid, value in (data.get("custom_fields") or {}).items():
            new_values[field_gid] = self._coerce_value(field_gid, value, enabled.get(field_gid, False))
        check_task_write(data, task, self.users)
        if isinstance(data.get("html_notes"), str):
            data = {**data, "notes": unescape(re.sub(r"<[^>]+>", "", data["html_notes"]))}
        for key in ("name", "notes", "due_on", "due_at", "start_on", "start_at", "resource_subtype"):
            if key in data and task.get(key) != data[key]:
                task[key] = data[key]
                changed.append(key)
        if "external" in data and task.get("external") != data["external"]:
            task["external"] = dict(data["external"]) if data["external"] else None
            changed.append("external")
        if "assignee" in data:
            assignee = data["assignee"]
            if assignee == "me":
                assignee = user
            elif assignee and "@" in str(assignee):
                assignee = self._user_by_email(assignee)
            if task["assignee"] != assignee:
                task["assignee"], changed = assignee, [*changed, "assignee"]
        if task["resource_subtype"] == "approval" and task["approval_status"] is None:
            task["approval_status"] = "pending"
        status = data.get("approval_status")
        if (
            status is not None
            and task["resource_subtype"] == "approval"
            and status != task["approval_status"]
        ):
            task["approval_status"] = status
            changed.append("approval_status")
            data = {**data, "completed": status != "pending"}
        if "completed" in data and bool(data["completed"]) != task["completed"]:
            task["completed"] = bool(data["completed"])
            task["completed_at"] = self.now_iso() if task["completed"] else None
            task["completed_by"] = user if task["completed"] else None
            changed.append("completed")
            if task["resource_subtype"] == "approval" and status is None:
                # completed=true means approved; false means pending again (§4.4).
                task["approval_status"] = "approved" if task["completed"] else "pending"
        old_values = {g: task["custom_values"].get(g) for g in new_values}
        changed_fields = [g for g, v in new_values.items() if old_values[g] != v]
        task["custom_values"].update(new_values)
        if changed or changed_fields:
            task["modified_at"] = self.now_iso()
        if emit:
            for name in changed:
                self._emit(gid, user, "changed", change={"field": name, "action": "changed"})
            for field_gid in changed_fields:
                self._emit(
                    gid,
                    user,
                    "changed",
                    change={
                        "field": "custom_fields",
                        "action": "changed",
                        "new_value": {"gid": field_gid, "resource_type": "custom_field"},
                    },
                )
            after = {k: task.get(k) for k in PLAIN_FIELDS}
            self._change_stories(
                gid, user, before, after, {g: (old_values[g], new_values[g]) for g in changed_fields}
            )
        return changed + ["custom_fields"] * bool(changed_fields)

    def h_update_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        data = self._data(req)
        unknown = set(data) - TASK_WRITABLE
        if unknown:
            raise _err(400, f"{sorted(unknown)[0]}: Cannot write this property")
        snapshot = json.loads(json.dumps(task))
        try:
            self._apply(task, data, me, gid)
        except SimError:
            task.clear()
            task.update(snapshot)
            raise
        return self._one(req, self.render_task(gid))

    def h_add_project(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        data = self._data(req)
        project, section = str(data.get("project") or ""), data.get("section")
        if not project:
            raise _err(400, "project: Missing input")
        self._readable_project(req, project)
        if section and self.sections.get(section, {}).get("project") != project:
            raise _err(400, f"section: {section} is not in project {project}")
        self._add_to_project(gid, project, section, me)
        return SimResponse.json({"data": {}})

    def h_remove_project(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        project = str(self._data(req).get("project") or "")
        if not project:
            raise _err(400, "project: Missing input")
        self._readable_project(req, project)
        if project in task["projects"]:
            self._remove_from_project(gid, project, me)
        return SimResponse.json({"data": {}})

    def _add_to_project(self, gid: str, project: str, section: str | None, user: str | None) -> None:
        """Moving between containers does not change modified_at (§4.2); it leaves stories."""
        task = self.tasks[gid]
        new = project not in task["projects"]
        old_section = task["sections"].get(project)
        if new:
            task["projects"].append(project)
        task["sections"][project] = section or old_section or self._default_section(project)
        if new:
            self.add_story(
                gid,
                user,
                "added_to_project",
                f"added this task to {self.projects[project]['name']}",
                project=self._compact("project", project),
            )
            self._emit(gid, user, "added", parent=self._compact("project", project))
        elif old_section != task["sections"][project]:
            self._section_moved(gid, user, old_section, task["sections"][project])

    def _remove_from_project(self, gid: str, project: str, user: str | None) -> None:
        task = self.tasks[gid]
        task["projects"].remove(project)
        task["sections"].pop(project, None)
        self.add_story(
            gid,
            user,
            "removed_from_project",
            f"removed this task from {self.projects[project]['name']}",
            project=self._compact("project", project),
        )
        # Watchers of the project it left still hear of it (the event names the project as parent).
        self._emit(gid, user, "removed", parent=self._compact("project", project), also=(project,))

    def _section_moved(self, gid: str, user: str | None, old: str | None, new: str) -> None:
        self.add_story(
            gid,
            user,
            "section_changed",
            f"moved this task to {self.sections[new]['name']}",
            **({"old_section": self._compact("section", old)} if old else {}),
            new_section=self._compact("section", new),
        )
        self._emit(gid, user, "added", parent=self._compact("section", new))

    def h_delete_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        self._delete_task(gid, me)
        return SimResponse.json({"data": {}})

    def h_section_add_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        section = self._get(self.sections, "section", gid)
        task_gid = str(self._data(req).get("task") or "")
        task = self._get(self.tasks, "task", task_gid)
        if section["project"] not in task["projects"]:
            raise _err(400, "task: The task is not in the section's project.")
        old = task["sections"].get(section["project"])
        task["sections"][section["project"]] = gid  # leaves the project's other sections (§4.1)
        if old != gid:
            self._section_moved(task_gid, me, old, gid)
        return SimResponse.json({"data": {}})
