"""Projects, sections, custom field settings and custom field values (§5)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ..core import SimError, SimRequest, SimResponse, control
from .helpers import err as _err


class ProjectsMixin:
    # The date custom-field write shape this Asana accepts: "object" {"date": "YYYY-MM-DD"} (the settled
    # one, docs/vendor-facts.md) or "string" (a bare "YYYY-MM-DD"); never both.
    date_write_shape = "object"

    @control
    def set_date_write_shape(self, shape: str) -> str:
        """Which date custom-field write shape this Asana accepts: "object" (settled) or "string"."""
        if shape not in ("object", "string"):
            raise ValueError("shape must be 'object' or 'string'")
        self.date_write_shape = shape
        return shape

    @control
    def project_board(self, project: str) -> dict:
        """The project as a person sees its board: sections in order, each with its tasks (name,
        completed, approval status, custom field values by name) and the project's custom fields with
        their enum options. Read-only; not a vendor route (the playground's view of the sandbox)."""
        if project not in self.projects:
            raise SimError(404, {"message": f"no project {project}"})
        p = self.projects[project]
        fields = []
        for setting in p["settings"]:
            f = self.custom_fields[setting["field"]]
            fields.append(
                {
                    "gid": setting["field"],
                    "name": f["name"],
                    "type": f["type"],
                    "options": [
                        {"gid": o, "name": opt["name"], "enabled": opt["enabled"]}
                        for o, opt in ((o, self.enum_options[o]) for o in f["options"])
                    ],
                }
            )
        sections = {s: [] for s in p["sections"]}
        for gid, task in self.tasks.items():
            section = task["sections"].get(project)
            if project not in task["projects"] or task.get("parent"):
                continue
            values = {}
            for field in fields:
                value = task["custom_values"].get(field["gid"])
                if value is None:
                    continue
                if field["type"] == "enum":
                    value = self.enum_options[value]["name"]
                elif field["type"] == "multi_enum":
                    value = ", ".join(self.enum_options[o]["name"] for o in value)
                values[field["name"]] = value
            sections.setdefault(section, []).append(
                {
                    "gid": gid,
                    "name": task["name"],
                    "completed": task["completed"],
                    "approval_status": task.get("approval_status"),
                    "resource_subtype": task["resource_subtype"],
                    "modified_at": task["modified_at"],
                    "fields": values,
                }
            )
        return {
            "gid": project,
            "name": p["name"],
            "fields": fields,
            "sections": [
                {"gid": s, "name": self.sections[s]["name"] if s in self.sections else "", "tasks": tasks}
                for s, tasks in sections.items()
            ],
        }

    # ---- projects, sections, custom fields (§5) ---------------------------------------------------
    def _readable_project(self, req: SimRequest, gid: str) -> dict:
        me = self._user_of(req)
        project = self._get(self.projects, "project", gid)
        self._require_member(project["workspace"], me)
        return project

    def h_project(self, req: SimRequest, gid: str) -> SimResponse:
        self._readable_project(req, gid)
        return self._one(req, self.render_project(gid))

    def h_sections(self, req: SimRequest, gid: str) -> SimResponse:
        p = self._readable_project(req, gid)
        items = [
            {
                **self._compact("section", s),
                "project": self._compact("project", gid),
                "created_at": self.sections[s]["created_at"],
            }
            for s in p["sections"]
        ]
        return self._list(req, items, "section")

    def h_settings(self, req: SimRequest, gid: str) -> SimResponse:
        p = self._readable_project(req, gid)
        items = [
            {
                "gid": s["gid"],
                "resource_type": "custom_field_setting",
                "is_important": s["is_important"],
                "custom_field": self.render_field(s["field"]),
                "parent": self._compact("project", gid),
                "project": self._compact("project", gid),
            }
            for s in p["settings"]
        ]
        return self._list(req, items, "custom_field_setting")

    def h_custom_field(self, req: SimRequest, gid: str) -> SimResponse:
        self._user_of(req)
        self._get(self.custom_fields, "custom_field", gid)
        return self._one(req, self.render_field(gid))

    def _coerce_value(self, field_gid: str, value: Any, enabled: bool) -> Any:
        """Asana's rules for a custom field write (§4.3, §5); the sandbox is strict where Asana is vague."""
        f = self.custom_fields.get(field_gid)
        if f is None:
            raise _err(400, f"custom_fields: Unknown custom field: {field_gid}")
        if f["formula"] or f["read_only"]:
            raise _err(403, f"custom_fields: {f['name']} is read-only and cannot be changed.")
        if value is None:
            return None
        if not enabled:
            raise _err(
                400,
                f"custom_fields: {f['name']} is not on any of the task's projects; its value "
                "can only be cleared.",
            )
        kind = f["type"]
        if kind == "text":
            if not isinstance(value, str) or len(value) > 1024:
                raise _err(400, f"custom_fields: {f['name']} must be a string of at most 1024 characters")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _err(400, f"custom_fields: {f['name']} must be a number")
            q = Decimal(str(value)).quantize(Decimal(1).scaleb(-f["precision"]), rounding=ROUND_HALF_UP)
            return float(q) if f["precision"] else int(q)
        if kind in ("enum", "multi_enum"):
            gids = [value] if kind == "enum" else value
            if not isinstance(gids, list) or not all(isinstance(g, str) for g in gids):
                raise _err(400, f"custom_fields: {f['name']} takes enum option GIDs")
            for option in gids:
                if option not in f["options"]:
                    raise _err(400, f"custom_fields: {option} is not an enum option of {f['name']}")
                if not self.enum_options[option]["enabled"]:
                    raise _err(400, f"custom_fields: enum option {option} is disabled")
            return gids[0] if kind == "enum" else list(dict.fromkeys(gids))
        if kind == "date":
            if self.date_write_shape == "string":
                if not isinstance(value, str):
                    raise _err(400, f'custom_fields: {f["name"]} takes a "YYYY-MM-DD" string')
                text = value
            elif not isinstance(value, dict) or not isinstance(value.get("date"), str):
                raise _err(400, f'custom_fields: {f["name"]} takes {{"date": "YYYY-MM-DD"}}')
            else:
                text = value["date"]
            try:
                return datetime.strptime(text, "%Y-%m-%d").date().isoformat()
            except ValueError:
                raise _err(400, f"custom_fields: {text} is not a valid date") from None
        if kind == "people":
            if not isinstance(value, list) or any(u not in self.users for u in value):
                raise _err(400, f"custom_fields: {f['name']} takes a list of user GIDs")
            return list(dict.fromkeys(value))
        raise _err(400, f"custom_fields: {kind} fields are not supported by the sandbox")
