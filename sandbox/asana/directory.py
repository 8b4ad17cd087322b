"""OAuth token endpoint (§1.2), users, workspaces, memberships and teams (§7)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from ..core import SimRequest, SimResponse
from .helpers import err as _err


class DirectoryMixin:
    # ---- OAuth (§1.2) ----------------------------------------------------------------------------
    def h_oauth_token(self, req: SimRequest) -> SimResponse:
        form = dict(parse_qsl(req.body.decode()))

        def refuse(status: int, error: str, text: str) -> SimResponse:
            return SimResponse.json({"error": error, "error_description": text}, status)

        if self.oauth_clients.get(form.get("client_id", "")) != form.get("client_secret") or not form.get(
            "client_id"
        ):
            return refuse(401, "invalid_client", "The client credentials are invalid.")
        if form.get("grant_type") == "refresh_token":
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))
            if not grant or grant["client"] != form["client_id"]:
                return refuse(400, "invalid_grant", "The refresh token is invalid or expired.")
            refresh = None
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[form["refresh_token"]]
                refresh = self._new_refresh(grant["user"], grant["client"])
        elif form.get("grant_type") == "authorization_code":
            grant = self.auth_codes.pop(form.get("code", ""), None)
            if not grant:
                return refuse(400, "invalid_grant", "The authorization code is invalid.")
            refresh = self._new_refresh(grant["user"], grant["client"])
        else:
            return refuse(
                400, "unsupported_grant_type", "grant_type must be refresh_token or authorization_code"
            )
        access = self._new_access(grant["user"], grant["client"])
        user = self.users[grant["user"]]
        body = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
            "data": {
                "id": int(grant["user"]),
                "gid": grant["user"],
                "name": user["name"],
                "email": user["email"],
            },
        }
        if refresh:
            body["refresh_token"] = refresh
        return SimResponse.json(body)

    # ---- users, workspaces, teams (§7) ------------------------------------------------------------
    def h_me(self, req: SimRequest) -> SimResponse:
        return self._one(req, self.render_user(self._user_of(req)))

    def h_user(self, req: SimRequest, gid: str) -> SimResponse:
        self._user_of(req)
        self._get(self.users, "user", gid)
        return self._one(req, self.render_user(gid))

    def h_users(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        workspace = req.arg("workspace")
        if not workspace:
            raise _err(400, "workspace: Missing input")
        self._require_member(workspace, me)
        users = sorted(u for (ws, u) in self.memberships if ws == workspace)
        return self._list(req, [self.render_user(u) for u in users], "user")

    def h_workspace(self, req: SimRequest, gid: str) -> SimResponse:
        self._require_member(gid, self._user_of(req))
        self._get(self.workspaces, "workspace", gid)
        return self._one(req, self.render_workspace(gid))

    def h_memberships(self, req: SimRequest, gid: str) -> SimResponse:
        self._require_member(gid, self._user_of(req))
        user = req.arg("user")
        if user and "@" in user:
            user = self._user_by_email(user)
        keys = sorted(k for k in self.memberships if k[0] == gid and (user is None or k[1] == user))
        return self._list(req, [self.render_membership(*k) for k in keys], "workspace_membership")

    def _user_by_email(self, email: str) -> str | None:
        return next((g for g, u in self.users.items() if u["email"].lower() == email.lower()), None)

    def h_add_user(self, req: SimRequest, gid: str) -> SimResponse:
        self._require_member(gid, self._user_of(req))
        ws = self._get(self.workspaces, "workspace", gid)
        ref = str(self._data(req).get("user") or "")
        user = self._user_by_email(ref) if "@" in ref else ref
        if "@" in ref and user is None:
            user = self.add_user(ref.split("@")[0].replace(".", " ").title(), ref)
        if user not in self.users:
            raise _err(404, f"user: Unknown object: {ref}")
        existing = self.memberships.get((gid, user))
        if existing is None or not existing["is_active"]:
            domain = self.users[user]["email"].rsplit("@", 1)[-1].lower()
            guest = bool(ws["is_organization"] and domain not in ws["email_domains"])
            self._join(gid, user, is_guest=guest)
        return self._one(req, self.render_user(user))

    def h_remove_user(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        if not self._require_member(gid, me)["is_admin"]:
            raise _err(403, "The user making this call must be an admin in the workspace.")
        ref = str(self._data(req).get("user") or "")
        user = self._user_by_email(ref) if "@" in ref else ref
        if (gid, user) not in self.memberships:
            raise _err(404, f"user: Unknown object: {ref}")
        del self.memberships[(gid, user)]
        for team in self.teams.values():
            if team["workspace"] == gid:
                team["members"].discard(user)
        return SimResponse.json({"data": {}})

    def _team_call(self, req: SimRequest, gid: str) -> tuple[dict, str]:
        me = self._user_of(req)
        team = self._get(self.teams, "team", gid)
        if me not in team["members"]:
            raise _err(403, "The user making this call must be a member of the team.")
        ref = str(self._data(req).get("user") or "")
        user = self._user_by_email(ref) if "@" in ref else ref
        if user not in self.users or (team["workspace"], user) not in self.memberships:
            raise _err(400, "user: The user must exist in the same organization as the team.")
        return team, user

    def h_team_users(self, req: SimRequest, gid: str) -> SimResponse:
        """GET /teams/{gid}/users — compact users of the team ([OAS] getUsersForTeam, reference §7)."""
        team = self._get(self.teams, "team", gid)
        self._require_member(team["workspace"], self._user_of(req))
        users = sorted(team["members"], key=lambda u: self.users[u]["name"].lower())
        return self._list(req, [self.render_user(u) for u in users], "user", paginate=False)

    def h_team_add(self, req: SimRequest, gid: str) -> SimResponse:
        team, user = self._team_call(req, gid)
        team["members"].add(user)
        guest = self.memberships[(team["workspace"], user)]["is_guest"]
        return self._one(
            req,
            {
                "gid": self.new_gid(),
                "resource_type": "team_membership",
                "user": self._compact("user", user),
                "team": self._compact("team", gid),
                "is_guest": guest,
                "is_limited_access": False,
                "is_admin": False,
            },
            200,
        )

    def h_team_remove(self, req: SimRequest, gid: str) -> SimResponse:
        team, user = self._team_call(req, gid)
        team["members"].discard(user)
        return SimResponse.json({"data": {}})
