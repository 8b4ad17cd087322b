"""Asana during onboarding: who the token acts as, its workspaces, their projects, a project's
sections and custom fields — all GETs, listed by name for the operator to pick from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.asana.client import AsanaClient, client_for
from integrations.asana.fields import FieldSpec

PROJECT_FIELDS = ("name", "archived")


@dataclass
class TokenUser:
    gid: str
    name: str
    email: str
    workspaces: list[tuple[str, str]]  # (gid, name)


def client(connection: Any) -> AsanaClient:
    """A client for a connection that may not be saved yet (the wizard tests a token before storing it)."""
    return client_for(connection, rate_limiter=None) if connection.pk is None else client_for(connection)


def token_user(connection: Any) -> TokenUser:
    """GET /users/me: the token's user and the workspaces it belongs to (raises AuthFailed on a bad token)."""
    me = client(connection).me()
    return TokenUser(
        gid=str(me.get("gid") or ""),
        name=str(me.get("name") or ""),
        email=str(me.get("email") or ""),
        workspaces=[(str(w.get("gid")), str(w.get("name") or "")) for w in me.get("workspaces") or []],
    )


def projects(connection: Any, workspace_gid: str) -> list[tuple[str, str]]:
    """(gid, name) of the workspace's projects that are not archived, by name."""
    rows = client(connection).iter_pages(f"/workspaces/{workspace_gid}/projects", fields=PROJECT_FIELDS)
    return sorted(
        ((str(p["gid"]), str(p.get("name") or "")) for p in rows if not p.get("archived")),
        key=lambda p: p[1].lower(),
    )


def sections(connection: Any, project_gid: str) -> list[tuple[str, str]]:
    return [(str(s["gid"]), str(s.get("name") or "")) for s in client(connection).list_sections(project_gid)]


def fields(connection: Any, project_gid: str) -> dict[str, FieldSpec]:
    """{field GID: FieldSpec} of the project's custom fields (GET /projects/{gid}/custom_field_settings)."""
    return client(connection).project_custom_fields(project_gid)
