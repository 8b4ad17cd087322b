"""Rendering records the way Asana answers them ([OAS] *Response schemas; §2.4, §5)."""

from __future__ import annotations

from html import escape


class RenderMixin:
    # ---- renderers -------------------------------------------------------------------------------
    def _compact(self, kind: str, gid: str | None) -> dict | None:
        if gid is None:
            return None
        source = {
            "user": self.users,
            "project": self.projects,
            "section": self.sections,
            "workspace": self.workspaces,
            "team": self.teams,
            "task": self.tasks,
        }[kind]
        obj = source.get(gid, {})
        return {"gid": gid, "resource_type": kind, "name": obj.get("name", "")}

    def _option(self, gid: str) -> dict:
        o = self.enum_options[gid]
        return {
            "gid": gid,
            "resource_type": "enum_option",
            "name": o["name"],
            "enabled": o["enabled"],
            "color": o["color"],
        }

    def render_field(self, gid: str) -> dict:
        f = self.custom_fields[gid]
        out = {
            "gid": gid,
            "resource_type": "custom_field",
            "name": f["name"],
            "type": f["type"],
            "resource_subtype": f["type"],
            "is_formula_field": f["formula"],
            "is_value_read_only": f["read_only"],
            "enabled": True,
            "description": "",
        }
        if f["type"] in ("enum", "multi_enum"):
            out["enum_options"] = [self._option(o) for o in f["options"]]
        if f["type"] == "number":
            out["precision"] = f["precision"]
        return out

    def _field_value(self, task: dict, gid: str, enabled: bool) -> dict:
        f = self.custom_fields[gid]
        value = task["custom_values"].get(gid)
        entry = {
            "gid": gid,
            "resource_type": "custom_field",
            "name": f["name"],
            "type": f["type"],
            "resource_subtype": f["type"],
            "enabled": enabled,
            "display_value": None,
        }
        kind = f["type"]
        if kind == "text":
            entry["text_value"] = value
            entry["display_value"] = value
        elif kind == "number":
            entry["number_value"] = value
            entry["display_value"] = None if value is None else f"{value:.{f['precision']}f}"
        elif kind == "enum":
            if value:  # live Asana sends "enum_value": null; the spec says not nullable
                entry["enum_value"] = self._option(value)
            entry["display_value"] = self.enum_options[value]["name"] if value else None
        elif kind == "multi_enum":
            entry["multi_enum_values"] = [self._option(o) for o in value or []]
            entry["display_value"] = ", ".join(self.enum_options[o]["name"] for o in value or []) or None
        elif kind == "date":
            # Asana sends date_time: null for date-only values; the spec does not allow null there, so
            # the sandbox leaves it out (like the other nulls the spec forgets; see SPEC_GAPS.md).
            entry["date_value"] = {"date": value} if value else None
            entry["display_value"] = value
        elif kind == "people":
            entry["people_value"] = [self._compact("user", u) for u in value or []]
            entry["display_value"] = ", ".join(self.users[u]["name"] for u in value or []) or None
        return entry

    def _task_fields(self, task: dict) -> dict[str, bool]:
        """Field GID -> enabled: the projects' fields, plus values left behind by a departed field (§5)."""
        out: dict[str, bool] = {}
        for project in task["projects"]:
            for setting in self.projects[project]["settings"]:
                out[setting["field"]] = True
        for gid, value in task["custom_values"].items():
            if gid not in out and value not in (None, []):
                out[gid] = False
        return out

    def render_task(self, gid: str, t: dict | None = None) -> dict:
        """The complete task record ([OAS] TaskResponse); `t` renders a past version (search index)."""
        t = self.tasks[gid] if t is None else t
        user = lambda g: self._compact("user", g)  # noqa: E731
        subtasks = [g for g, sub in self.tasks.items() if sub.get("parent") == gid]
        out = {
            "gid": gid,
            "resource_type": "task",
            "name": t["name"],
            "resource_subtype": t["resource_subtype"],
            "completed": t["completed"],
            "completed_at": t["completed_at"],
            "created_at": t["created_at"],
            "modified_at": t["modified_at"],
            "due_on": t["due_on"],
            "due_at": t.get("due_at"),
            "start_on": t.get("start_on"),
            "start_at": t.get("start_at"),
            "is_rendered_as_separator": False,
            "notes": t["notes"],
            "html_notes": f"<body>{escape(t['notes'])}</body>",
            "liked": False,
            "likes": [],
            "num_likes": 0,
            "hearted": False,
            "hearts": [],
            "num_hearts": 0,
            "num_subtasks": len(subtasks),
            "assignee": user(t["assignee"]),
            "assignee_status": "inbox",
            "workspace": self._compact("workspace", t["workspace"]),
            "permalink_url": f"https://app.asana.com/0/0/{gid}",
            "projects": [self._compact("project", p) for p in t["projects"]],
            "memberships": [
                {"project": self._compact("project", p), "section": self._compact("section", s)}
                for p, s in t["sections"].items()
            ],
            "followers": [user(u) for u in t.get("followers") or []],
            "tags": [{"gid": g, "resource_type": "tag", "name": g} for g in t.get("tags") or []],
            "dependencies": [],
            "dependents": [],
            "custom_fields": [self._field_value(t, f, en) for f, en in self._task_fields(t).items()],
        }
        # Live Asana sends null for an unset reference; the spec says not nullable, so the sandbox
        # leaves these out (see SPEC_GAPS.md).
        for key, value in (
            ("created_by", user(t.get("created_by"))),
            ("completed_by", user(t.get("completed_by"))),
            ("parent", self._parent_compact(t.get("parent"))),
        ):
            if value is not None:
                out[key] = value
        if t.get("external"):
            out["external"] = dict(t["external"])
        if t["resource_subtype"] == "approval":
            out["approval_status"] = t["approval_status"]
        if out["assignee"] is None:
            del out["assignee"]
        for key in ("due_at", "start_on", "start_at"):
            if out[key] is None:
                del out[key]
        return out

    def _parent_compact(self, gid: str | None) -> dict | None:
        if gid is None:
            return None
        parent = self.tasks.get(gid) or self.deleted_tasks.get(gid) or {}
        return {
            "gid": gid,
            "resource_type": "task",
            "name": parent.get("name", ""),
            "resource_subtype": parent.get("resource_subtype", "default_task"),
        }

    def _field_compact(self, gid: str) -> dict:
        f = self.custom_fields[gid]
        return {
            "gid": gid,
            "resource_type": "custom_field",
            "name": f["name"],
            "type": f["type"],
            "resource_subtype": f["type"],
        }

    def render_webhook(self, gid: str) -> dict:
        w = self.webhooks[gid]
        resource = self.projects.get(w["resource"]) or self.tasks.get(w["resource"]) or {}
        keys = (
            "active",
            "target",
            "created_at",
            "last_success_at",
            "last_failure_at",
            "last_failure_content",
            "delivery_retry_count",
            "next_attempt_after",
            "failure_deletion_timestamp",
        )
        return {
            "gid": gid,
            "resource_type": "webhook",
            "filters": w["filters"],
            "resource": {
                "gid": w["resource"],
                "resource_type": w["resource_type"],
                "name": resource.get("name", ""),
            },
            # The spec's own example shows these as null, but its schema says not nullable: a null
            # is omitted (spec gap, see the report), which clients must read as "never happened".
            **{k: w[k] for k in keys if w[k] is not None},
        }

    def render_user(self, gid: str) -> dict:
        u = self.users[gid]
        workspaces = [ws for (ws, user), m in self.memberships.items() if user == gid and m["is_active"]]
        return {
            "gid": gid,
            "resource_type": "user",
            "name": u["name"],
            "email": u["email"],
            "photo": None,
            "workspaces": [self._compact("workspace", w) for w in workspaces],
        }

    def render_membership(self, workspace: str, user: str) -> dict:
        m = self.memberships[(workspace, user)]
        return {
            "gid": m["gid"],
            "resource_type": "workspace_membership",
            "user": self._compact("user", user),
            "workspace": self._compact("workspace", workspace),
            "created_at": m["created_at"],
            **{k: m[k] for k in ("is_active", "is_admin", "is_guest", "is_view_only")},
        }
