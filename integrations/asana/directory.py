"""Asana projects, sections and custom fields (§5), webhooks (§6; the receiver is webhooks.py), users,
workspace and team membership (§7), as methods of AsanaClient."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from integrations.asana import fields as cf
from integrations.asana.shapes import (
    CUSTOM_FIELD_SETTING_FIELDS,
    ME_FIELDS,
    MEMBERSHIP_FIELDS,
    PROJECT_FIELDS,
    SECTION_FIELDS,
    USER_FIELDS,
    WEBHOOK_FIELDS,
    CreatedWebhook,
)

log = logging.getLogger(__name__)


class DirectoryMixin:
    """Methods of AsanaClient (integrations/asana/client.py): they call its `_call` and `iter_pages`."""

    # ---- projects, sections, custom fields (§5) ---------------------------------------------------
    def get_project(self, project_gid: str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{project_gid}", fields=PROJECT_FIELDS)

    def list_sections(self, project_gid: str) -> list[dict[str, Any]]:
        return list(self.iter_pages(f"/projects/{project_gid}/sections", fields=SECTION_FIELDS))

    def custom_field_settings(self, project_gid: str) -> list[dict[str, Any]]:
        """GET /projects/{gid}/custom_field_settings with the definitions we validate against."""
        return list(
            self.iter_pages(
                f"/projects/{project_gid}/custom_field_settings", fields=CUSTOM_FIELD_SETTING_FIELDS
            )
        )

    def project_custom_fields(self, project_gid: str) -> dict[str, cf.FieldSpec]:
        return cf.specs_from_settings(self.custom_field_settings(project_gid))

    # ---- webhooks (§6; the receiving view lives in webhooks.py) ----------------------------------
    def create_webhook(
        self, resource_gid: str, target: str, filters: list[dict[str, Any]] | None = None
    ) -> CreatedWebhook:
        """POST /webhooks. Asana handshakes with `target` while this call is open (§6.2): never call it
        from the web worker that must answer the handshake. The secret comes back in the 201 body."""
        data: dict[str, Any] = {"resource": resource_gid, "target": target}
        if filters:
            data["filters"] = filters
        body = self._call("POST", "/webhooks", fields=WEBHOOK_FIELDS, data=data, whole_body=True)
        webhook, secret = body["data"], str(body.get("X-Hook-Secret") or "")
        self.register_secrets(secret)
        return CreatedWebhook(webhook=webhook, secret=secret)

    def list_webhooks(
        self,
        workspace_gid: str | None = None,
        *,
        resource_gid: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET /webhooks?workspace=[&resource=] with the failure fields the watchdog reads (§6.5)."""
        params = {"workspace": workspace_gid or self.workspace_gid}
        if resource_gid:
            params["resource"] = resource_gid
        return list(self.iter_pages("/webhooks", fields=WEBHOOK_FIELDS, params=params))

    def get_webhook(self, webhook_gid: str) -> dict[str, Any]:
        return self._call("GET", f"/webhooks/{webhook_gid}", fields=WEBHOOK_FIELDS)

    def delete_webhook(self, webhook_gid: str) -> None:
        self._call("DELETE", f"/webhooks/{webhook_gid}")

    # ---- users, workspace and team membership (§7) -----------------------------------------------
    def me(self) -> dict[str, Any]:
        return self._call("GET", "/users/me", fields=ME_FIELDS)

    def get_workspace(self, workspace_gid: str) -> dict[str, Any]:
        return self._call("GET", f"/workspaces/{workspace_gid}", fields=("name", "is_organization"))

    def iter_users(self, workspace_gid: str | None = None) -> Iterator[dict[str, Any]]:
        """GET /users?workspace= — paginated, unlike the 2000-capped /workspaces/{gid}/users."""
        return self.iter_pages(
            "/users", fields=USER_FIELDS, params={"workspace": workspace_gid or self.workspace_gid}
        )

    def iter_workspace_memberships(
        self,
        workspace_gid: str | None = None,
        *,
        user: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        params = {"user": user} if user else None
        return self.iter_pages(
            f"/workspaces/{workspace_gid or self.workspace_gid}/workspace_memberships",
            fields=MEMBERSHIP_FIELDS,
            params=params,
        )

    def roster(self, workspace_gid: str | None = None) -> list[dict[str, Any]]:
        """Users joined with their membership flags: gid, name, email, is_active, is_admin, is_guest."""
        flags = {m["user"]["gid"]: m for m in self.iter_workspace_memberships(workspace_gid) if m.get("user")}
        out = []
        for user in self.iter_users(workspace_gid):
            m = flags.get(user["gid"], {})
            out.append(
                {
                    "gid": user["gid"],
                    "name": user.get("name"),
                    "email": (user.get("email") or "").lower(),
                    "member": bool(m),
                    **{k: bool(m.get(k)) for k in ("is_active", "is_admin", "is_guest")},
                }
            )
        return out

    def add_user_to_workspace(self, user: str, workspace_gid: str | None = None) -> dict[str, Any]:
        """POST /workspaces/{gid}/addUser {user: gid or e-mail} — returns the user (§7)."""
        return self._call(
            "POST",
            f"/workspaces/{workspace_gid or self.workspace_gid}/addUser",
            fields=USER_FIELDS,
            data={"user": user},
        )

    def remove_user_from_workspace(self, user: str, workspace_gid: str | None = None) -> None:
        """POST /workspaces/{gid}/removeUser — caller must be an admin; a PAT owner inherits resources."""
        self._call(
            "POST", f"/workspaces/{workspace_gid or self.workspace_gid}/removeUser", data={"user": user}
        )

    def add_user_to_team(self, team_gid: str, user: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/teams/{team_gid}/addUser", fields=("user", "team", "is_guest"), data={"user": user}
        )

    def remove_user_from_team(self, team_gid: str, user: str) -> None:
        self._call("POST", f"/teams/{team_gid}/removeUser", data={"user": user})
