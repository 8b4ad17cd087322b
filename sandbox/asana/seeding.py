"""Seeding helpers: the world as people made it in the UI (no rate limit, no contract)."""

from __future__ import annotations

import secrets
from typing import Any


class SeedingMixin:
    # ---- seeding helpers -------------------------------------------------------------------------
    def add_workspace(
        self,
        name: str,
        *,
        gid: str | None = None,
        is_organization: bool = True,
        email_domains: tuple[str, ...] = ("demo.example",),
        premium: bool = True,
    ) -> str:
        gid = gid or self.new_gid()
        self.workspaces[gid] = {
            "premium": premium,
            "name": name,
            "is_organization": is_organization,
            "email_domains": [d.lower() for d in email_domains],
        }
        return gid

    def add_user(
        self,
        name: str,
        email: str,
        *,
        workspace: str | None = None,
        gid: str | None = None,
        is_admin: bool = False,
        is_guest: bool = False,
        is_active: bool = True,
    ) -> str:
        gid = gid or self.new_gid()
        self.users[gid] = {"name": name, "email": email}
        if workspace:
            self._join(workspace, gid, is_admin=is_admin, is_guest=is_guest, is_active=is_active)
        return gid

    def _join(
        self,
        workspace: str,
        user: str,
        *,
        is_admin: bool = False,
        is_guest: bool = False,
        is_active: bool = True,
    ) -> None:
        self.memberships[(workspace, user)] = {
            "gid": self.new_gid(),
            "is_active": is_active,
            "is_admin": is_admin,
            "is_guest": is_guest,
            "is_view_only": False,
            "created_at": self.now_iso(),
        }

    def add_pat(self, user: str, token: str | None = None) -> str:
        token = token or f"2/{user}/{self.new_gid()}:{secrets.token_hex(16)}"
        self.tokens[token] = {"user": user, "kind": "pat", "expires_at": None, "client": None}
        return token

    def add_oauth_client(self, client_id: str, client_secret: str) -> None:
        self.oauth_clients[client_id] = client_secret

    def _new_access(self, user: str, client: str) -> str:
        token = f"oauth-access-{secrets.token_hex(16)}"
        self.tokens[token] = {
            "user": user,
            "kind": "oauth",
            "client": client,
            "expires_at": self.now() + self.access_token_ttl,
        }
        return token

    def _new_refresh(self, user: str, client: str) -> str:
        token = f"oauth-refresh-{secrets.token_hex(16)}"
        self.refresh_tokens[token] = {"user": user, "client": client}
        return token

    def issue_oauth_tokens(self, user: str, client_id: str) -> tuple[str, str]:
        """(access token, refresh token) as if the user had just authorised the app."""
        return self._new_access(user, client_id), self._new_refresh(user, client_id)

    def issue_auth_code(self, user: str, client_id: str) -> str:
        code = secrets.token_hex(8)
        self.auth_codes[code] = {"user": user, "client": client_id}
        return code

    def expire_access_tokens(self) -> None:
        for info in self.tokens.values():
            if info["kind"] == "oauth":
                info["expires_at"] = self.now() - 1

    def revoke_token(self, token: str) -> None:
        self.tokens.pop(token, None)
        self.refresh_tokens.pop(token, None)

    def expire_offsets(self) -> None:
        self.offsets.clear()

    def add_team(
        self, workspace: str, name: str, members: tuple[str, ...] = (), *, gid: str | None = None
    ) -> str:
        gid = gid or self.new_gid()
        self.teams[gid] = {"name": name, "workspace": workspace, "members": set(members)}
        return gid

    def add_project(self, workspace: str, name: str, *, gid: str | None = None) -> str:
        gid = gid or self.new_gid()
        self.projects[gid] = {
            "created_at": self.now_iso(),
            "name": name,
            "workspace": workspace,
            "archived": False,
            "sections": [],
            "settings": [],
        }
        return gid

    def add_section(self, project: str, name: str, *, gid: str | None = None) -> str:
        gid = gid or self.new_gid()
        self.sections[gid] = {"name": name, "project": project, "created_at": self.now_iso()}
        self.projects[project]["sections"].append(gid)
        return gid

    def add_custom_field(
        self,
        name: str,
        type: str,
        *,
        gid: str | None = None,
        precision: int = 0,
        options: list[tuple[str, str, bool]] | list[str] = (),
        formula: bool = False,
        read_only: bool = False,
        projects: tuple[str, ...] = (),
    ) -> str:
        """`options`: names, or (gid, name, enabled) triples for fixed GIDs."""
        gid = gid or self.new_gid()
        self.custom_fields[gid] = {
            "name": name,
            "type": type,
            "precision": precision,
            "options": [],
            "formula": formula,
            "read_only": read_only,
        }
        for option in options:
            o_gid, o_name, enabled = option if isinstance(option, tuple) else (self.new_gid(), option, True)
            self.add_enum_option(gid, o_name, gid=o_gid, enabled=enabled)
        for project in projects:
            self.add_field_to_project(project, gid)
        return gid

    def add_enum_option(self, field: str, name: str, *, gid: str | None = None, enabled: bool = True) -> str:
        gid = gid or self.new_gid()
        self.enum_options[gid] = {"name": name, "enabled": enabled, "color": "none", "field": field}
        self.custom_fields[field]["options"].append(gid)
        return gid

    def disable_option(self, option: str) -> None:
        self.enum_options[option]["enabled"] = False

    def add_field_to_project(self, project: str, field: str, *, is_important: bool = False) -> None:
        settings = self.projects[project]["settings"]
        if all(s["field"] != field for s in settings):
            settings.append({"gid": self.new_gid(), "field": field, "is_important": is_important})

    def remove_field_from_project(self, project: str, field: str) -> None:
        """Values stay on the tasks but become disabled (§5 "Enabled and disabled values")."""
        self.projects[project]["settings"] = [
            s for s in self.projects[project]["settings"] if s["field"] != field
        ]

    def rename_field(self, field: str, name: str) -> None:
        self.custom_fields[field]["name"] = name

    def change_field_type(self, field: str, new_type: str, *, precision: int = 0) -> None:
        """Drift helper: the API forbids type changes, but a field can be deleted and re-created in the UI."""
        self.custom_fields[field].update(type=new_type, precision=precision)

    def add_task(
        self,
        project: str,
        name: str,
        *,
        section: str | None = None,
        approval: bool = False,
        custom_fields: dict[str, Any] | None = None,
        gid: str | None = None,
        user: str | None = None,
    ) -> str:
        """A task as if a person made it in the UI (values in wire shape; no rate limit, no contract)."""
        gid = gid or self.new_gid()
        with self.lock:
            self.tasks[gid] = self._blank_task(
                self.projects[project]["workspace"], name, {project: section}, created_by=user
            )
            data = {
                "custom_fields": custom_fields or {},
                **({"resource_subtype": "approval"} if approval else {}),
            }
            self._apply(self.tasks[gid], data, user, gid, emit=False)
            self._emit(gid, user, "added", parent=self._compact("project", project))
        return gid

    def ui_update_task(self, gid: str, user: str | None = None, **changes: Any) -> list[str]:
        """A person edits the task in Asana (events are attributed to `user`, None for system events)."""
        with self.lock, self._as_person():
            return self._apply(self.tasks[gid], changes, user, gid)

    def set_approval_status(self, gid: str, status: str, user: str | None = None) -> None:
        self.ui_update_task(gid, user, approval_status=status)

    def task_values(self, gid: str) -> dict[str, Any]:
        return dict(self.tasks[gid]["custom_values"])
