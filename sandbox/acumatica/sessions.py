"""Sign-in, sessions and licence seats (reference §2.1–§2.3, §6.3).

- An OAuth password grant opens one server session and holds one API-user seat. Refreshing reuses the
  session; the session ends when its access token expires (an hour) or on `POST /entity/auth/logout`
  with the Bearer header, and a refresh after that opens a new one (a seat again) (§2.1 "Sessions under
  OAuth").
- A cookie login (`POST /entity/auth/login`) holds a seat until logout or `cookie_idle_seconds` without
  a request (10 minutes, §2.2).
- One sign-in more than `seat_limit` is refused with "API Login Limit": a 429 plain-text body on the
  cookie login (§2.2, §6.3), an OAuth `invalid_grant` on the token endpoint (§2.1; status UNVERIFIED).
- Controls: `hold_seats(n)` (another integration holds n seats), `seats()`, `revoke_access(user)` (an
  admin revokes the connected application's tokens on SM303010), `expire_access_tokens()`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from ..core import SimError, SimRequest, SimResponse, control
from .common import LOGIN_LIMIT_TEXT, cookie, http_error, oauth_error

NOT_LOGGED_IN = {"message": "You are not logged in."}  # 401 body; literal text UNVERIFIED (§2.4)


class SessionsMixin:
    seat_limit: int
    token_lifetime: int
    cookie_idle_seconds: float

    def _init_sessions(self) -> None:
        self.clients: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}  # token -> {grant, expires_at}
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> grant id
        self.revoked_refresh_tokens: set[str] = set()
        self.grants: dict[str, str] = {}  # grant id -> user (the refresh chain)
        self.grant_sessions: dict[str, datetime] = {}  # grant id -> when its server session ends
        self.sessions: dict[str, str] = {}  # ASP.NET_SessionId -> user
        self.session_seen: dict[str, datetime] = {}  # ASP.NET_SessionId -> its last request
        self.foreign_seats = 0
        self.login_refusals: list[dict[str, Any]] = []

    # ---- seeding -----------------------------------------------------------------------------
    def add_oauth_client(self, client_id: str, secret: str) -> None:
        self.clients[client_id] = secret

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password

    def grant_authorization_code(self, username: str) -> str:
        """What the authorization-code flow leaves the connector with: a refresh token (no session
        yet: the first refresh opens one)."""
        grant = uuid.uuid4().hex
        self.grants[grant] = username
        refresh = "rt_" + uuid.uuid4().hex
        self.refresh_tokens[refresh] = grant
        return refresh

    # ---- seats -------------------------------------------------------------------------------
    def _end_expired_sessions(self) -> None:
        now = self.now()
        for grant, ends in list(self.grant_sessions.items()):
            if ends <= now:
                del self.grant_sessions[grant]
        idle = now - timedelta(seconds=self.cookie_idle_seconds)
        for sid, seen in list(self.session_seen.items()):
            if seen <= idle:
                self.sessions.pop(sid, None)
                del self.session_seen[sid]

    @property
    def seats_in_use(self) -> int:
        self._end_expired_sessions()
        return len(self.grant_sessions) + len(self.sessions) + self.foreign_seats

    def _seat_free(self, how: str, user: str) -> bool:
        if self.seats_in_use < self.seat_limit:
            return True
        self.login_refusals.append({"how": how, "user": user, "at": self.now()})
        return False

    @control
    def hold_seats(self, n: int) -> int:
        """Another integration holds `n` API-user seats (0 frees them); returns the seats in use."""
        self.foreign_seats = int(n)
        return self.seats_in_use

    def occupy_seats(self, n: int) -> None:  # the earlier name, kept for existing tests
        self.hold_seats(n)

    @control
    def seats(self) -> dict[str, Any]:
        """The licence's seats: limit, in use, and by whom (OAuth sessions, cookie sessions, others)."""
        in_use = self.seats_in_use
        return {
            "limit": self.seat_limit,
            "in_use": in_use,
            "oauth_sessions": len(self.grant_sessions),
            "cookie_sessions": len(self.sessions),
            "other_integrations": self.foreign_seats,
            "refused_logins": len(self.login_refusals),
        }

    @control
    def revoke_access(self, username: str | None = None) -> int:
        """An administrator revokes the connected application's tokens (SM303010/SM203010, §2.1): the
        tokens go, the sessions end, the client secrets stay. Returns the grants revoked."""
        doomed = {g for g, user in self.grants.items() if username is None or user == username}
        for token, grant in list(self.refresh_tokens.items()):
            if grant in doomed:
                del self.refresh_tokens[token]
                self.revoked_refresh_tokens.add(token)
        for token, info in list(self.access_tokens.items()):
            if info["grant"] in doomed:
                del self.access_tokens[token]
        for grant in doomed:
            self.grants.pop(grant, None)
            self.grant_sessions.pop(grant, None)
        return len(doomed)

    @control
    def expire_access_tokens(self) -> int:
        """Every access token expires now (their sessions with them)."""
        past = self.now() - timedelta(seconds=1)
        for info in self.access_tokens.values():
            info["expires_at"] = past
        self.grant_sessions.clear()
        return len(self.access_tokens)

    # ---- routes ------------------------------------------------------------------------------
    def _token(self, req: SimRequest) -> SimResponse:
        form = {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}
        client_id = form.get("client_id", "")
        if client_id not in self.clients or self.clients[client_id] != form.get("client_secret"):
            return oauth_error("invalid_client")
        grant_type = form.get("grant_type")
        if grant_type == "password":
            if self.users.get(form.get("username", "")) != form.get("password") or not form.get("password"):
                return oauth_error("invalid_grant", "invalid_username_or_password")
            if not self._seat_free("oauth", form["username"]):
                # UNVERIFIED status/shape; the docs only name the "API Login Limit" error (§2.1).
                return oauth_error("invalid_grant", LOGIN_LIMIT_TEXT)
            grant = uuid.uuid4().hex
            self.grants[grant] = form["username"]
            scopes = set((form.get("scope") or "").split())
        elif grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            grant = self.refresh_tokens.get(token)
            if grant is None:
                return oauth_error("invalid_grant", "invalid refresh token")
            if grant not in self.grant_sessions and not self._seat_free("oauth", self.grants[grant]):
                return oauth_error("invalid_grant", LOGIN_LIMIT_TEXT)  # its session had ended (§2.1)
            del self.refresh_tokens[token]
            self.revoked_refresh_tokens.add(token)  # rotated: the used one is revoked (§2.1)
            scopes = {"api", "offline_access"}
        else:
            return oauth_error("unsupported_grant_type")
        if "api" not in scopes:
            return SimResponse.json({"scope": " ".join(sorted(scopes)), "token_type": "Bearer"})
        access = "at_" + uuid.uuid4().hex
        expires_at = self.now() + timedelta(seconds=self.token_lifetime)
        self.access_tokens[access] = {"grant": grant, "expires_at": expires_at}
        self.grant_sessions[grant] = expires_at  # one session per grant, alive as long as its token
        body = {
            "access_token": access,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes)),
        }
        if "offline_access" in scopes:
            refresh = "rt_" + uuid.uuid4().hex
            self.refresh_tokens[refresh] = grant
            body["refresh_token"] = refresh
        return SimResponse.json(body)

    def _login(self, req: SimRequest) -> SimResponse:
        if "json" in (req.headers.get("Content-Type") or ""):
            creds = req.json()
        else:
            creds = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if creds.get("tenant") and creds.get("company"):
            raise http_error("Please use tenant", status=400)
        tenant = creds.get("tenant") or creds.get("company")
        if self.users.get(creds.get("name", "")) != creds.get("password") or (
            tenant and tenant != self.tenant
        ):
            # UNVERIFIED literal text; Acumatica reports bad credentials as a PXException.
            raise http_error("Invalid credentials. Please try again.", status=500)
        if not self._seat_free("cookie", creds["name"]):
            # The login topic lists 429 for license limits; body text per the C# client (§6.3).
            return SimResponse(
                429,
                f"{LOGIN_LIMIT_TEXT}: the maximum number of API users is reached.".encode(),
                {"Content-Type": "text/plain"},
            )
        sid = uuid.uuid4().hex[:24]
        self.sessions[sid] = creds["name"]
        self.session_seen[sid] = self.now()
        return SimResponse.empty(204, {"Set-Cookie": f"ASP.NET_SessionId={sid}; path=/; HttpOnly"})

    def _logout(self, req: SimRequest) -> SimResponse:
        """Sign-out ends the session and frees its seat: the cookie's, or the Bearer token's (§2.1)."""
        sid = cookie(req, "ASP.NET_SessionId")
        if sid:
            self.sessions.pop(sid, None)
            self.session_seen.pop(sid, None)
        auth = req.headers.get("Authorization") or ""
        if auth.startswith("Bearer ") and auth[7:] in self.access_tokens:
            grant = self.access_tokens[auth[7:]]["grant"]
            self.grant_sessions.pop(grant, None)
            for token, info in list(self.access_tokens.items()):
                if info["grant"] == grant:
                    del self.access_tokens[token]
        return SimResponse.empty(204)

    def _principal(self, req: SimRequest) -> str:
        """The session key of an authenticated request, else 401."""
        auth = req.headers.get("Authorization") or ""
        now = self.now()
        if auth.startswith("Bearer "):
            info = self.access_tokens.get(auth[7:])
            if info and info["expires_at"] > now and info["grant"] in self.grant_sessions:
                return "grant:" + info["grant"]
            raise SimError(401, NOT_LOGGED_IN)
        sid = cookie(req, "ASP.NET_SessionId")
        self._end_expired_sessions()
        if sid and sid in self.sessions:
            self.session_seen[sid] = now
            return "session:" + sid
        raise SimError(401, NOT_LOGGED_IN)
