"""What a setup wizard or a person browses: workspaces, projects, a project's or section's tasks, subtasks.

Shapes and parameters from [OAS] getWorkspaces, getProjects, getProjectsForWorkspace, getTasksForProject,
getTasksForSection, getSubtasksForTask, createSubtaskForTask; list endpoints answer compact records
unless `opt_fields` asks for more (§2.4) and page with `limit`/`offset` (§2.3).
"""

from __future__ import annotations

from ..core import SimRequest, SimResponse
from .helpers import TASK_WRITABLE, err, parse_time


class ListingMixin:
    def render_project(self, gid: str) -> dict:
        p = self.projects[gid]
        return {
            "gid": gid,
            "resource_type": "project",
            "name": p["name"],
            "archived": p["archived"],
            "color": None,
            "created_at": p.get("created_at") or self.now_iso(),
            "modified_at": p.get("created_at") or self.now_iso(),
            "notes": "",
            "public": True,
            "default_view": "list",
            "workspace": self._compact("workspace", p["workspace"]),
            "custom_field_settings": [
                {
                    "gid": s["gid"],
                    "resource_type": "custom_field_setting",
                    "is_important": s["is_important"],
                    "custom_field": self._field_compact(s["field"]),
                }
                for s in p["settings"]
            ],
            "custom_fields": [],
            "completed": False,
            "html_notes": "<body></body>",
            "icon": "list",
            "privacy_setting": "public_to_workspace",
            "default_access_level": "editor",
            "minimum_access_level_for_customization": "editor",
            "minimum_access_level_for_sharing": "editor",
            "members": [],
            "followers": [],
            "permalink_url": f"https://app.asana.com/0/{gid}/list",
            **({"team": self._compact("team", p["team"])} if p.get("team") else {}),
        }

    def render_workspace(self, gid: str) -> dict:
        ws = self.workspaces[gid]
        return {
            "gid": gid,
            "resource_type": "workspace",
            "name": ws["name"],
            "is_organization": ws["is_organization"],
            "email_domains": ws["email_domains"],
        }

    # ---- workspaces and projects -----------------------------------------------------------------
    def h_workspaces(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        mine = sorted(ws for (ws, u), m in self.memberships.items() if u == me and m["is_active"])
        return self._list(req, [self.render_workspace(ws) for ws in mine], "workspace")

    def _projects_in(self, req: SimRequest, workspace: str) -> SimResponse:
        self._get(self.workspaces, "workspace", workspace)
        self._require_member(workspace, self._user_of(req))
        archived = req.arg("archived")
        items = [
            self.render_project(g)
            for g, p in sorted(self.projects.items())
            if p["workspace"] == workspace
            and (archived is None or p["archived"] == (archived.lower() == "true"))
        ]
        return self._list(req, items, "project")

    def h_projects(self, req: SimRequest) -> SimResponse:
        workspace = req.arg("workspace")
        team = req.arg("team")
        if not workspace and team:
            workspace = self._get(self.teams, "team", team)["workspace"]
        if not workspace:
            raise err(400, "workspace: Missing input")
        return self._projects_in(req, workspace)

    def h_workspace_users(self, req: SimRequest, gid: str) -> SimResponse:
        """Compact users sorted alphabetically, "limited to 2000", no `limit` parameter (§2.3, §7)."""
        self._get(self.workspaces, "workspace", gid)
        self._require_member(gid, self._user_of(req))
        users = [u for (ws, u), m in self.memberships.items() if ws == gid and m["is_active"]]
        users.sort(key=lambda u: self.users[u]["name"].lower())
        return self._list(req, [self.render_user(u) for u in users[:2000]], "user", paginate=False)

    def h_workspace_projects(self, req: SimRequest, gid: str) -> SimResponse:
        return self._projects_in(req, gid)

    # ---- a project's, a section's tasks; subtasks --------------------------------------------------
    def h_project_tasks(self, req: SimRequest, gid: str) -> SimResponse:
        self._readable_project(req, gid)
        items = [self.render_task(t) for t in sorted(self.tasks) if gid in self.tasks[t]["projects"]]
        return self._list(req, self._completed_since(req, items), "task")

    def h_section_tasks(self, req: SimRequest, gid: str) -> SimResponse:
        section = self._get(self.sections, "section", gid)
        self._readable_project(req, section["project"])
        items = [
            self.render_task(t)
            for t in sorted(self.tasks)
            if self.tasks[t]["sections"].get(section["project"]) == gid
        ]
        return self._list(req, self._completed_since(req, items), "task")

    def h_section(self, req: SimRequest, gid: str) -> SimResponse:
        section = self._get(self.sections, "section", gid)
        self._readable_project(req, section["project"])
        return self._one(
            req,
            {
                **self._compact("section", gid),
                "created_at": section["created_at"],
                "project": self._compact("project", section["project"]),
                "projects": [self._compact("project", section["project"])],
            },
        )

    @staticmethod
    def _completed_since(req: SimRequest, items: list[dict]) -> list[dict]:
        """`completed_since=now` keeps incomplete tasks; a date keeps tasks completed after it too."""
        since = req.arg("completed_since")
        if not since:
            return items
        if since == "now":
            return [t for t in items if not t["completed"]]
        cutoff = parse_time(since, "completed_since")
        return [
            t
            for t in items
            if not t["completed"] or (t["completed_at"] and parse_time(t["completed_at"]) >= cutoff)
        ]

    def h_subtasks(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        items = [self.render_task(t) for t in sorted(self.tasks) if self.tasks[t].get("parent") == gid]
        return self._list(req, items, "task")

    def h_create_subtask(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        parent = self._get(self.tasks, "task", gid)
        self._require_member(parent["workspace"], me)
        data = self._data(req)
        unknown = set(data) - TASK_WRITABLE - {"followers", "tags"}
        if unknown:
            raise err(400, f"{sorted(unknown)[0]}: Unknown field")
        sub_gid = self.new_gid()
        # A subtask is in no project unless added; it shares its parent's workspace (§4.1).
        task = self._blank_task(parent["workspace"], data.get("name") or "", {}, created_by=me, parent=gid)
        self.tasks[sub_gid] = task
        try:
            self._apply(task, {k: v for k, v in data.items() if k in TASK_WRITABLE}, me, sub_gid, emit=False)
        except Exception:
            del self.tasks[sub_gid]
            raise
        self._emit(
            sub_gid,
            me,
            "added",
            subtype=task["resource_subtype"],
            parent=self._parent_compact(gid),
            task_gid=gid,
        )
        return self._one(req, self.render_task(sub_gid), 201)
