"""Signing in to Acumatica: OAuth 2.0 (password grant or a refresh-token chain) and legacy cookies.

Facts this module is built on (reference/acumatica.md §2):
- Token endpoint `{instance}/identity/connect/token`, form-encoded, `scope=api offline_access`; the
  answer carries `access_token`, `expires_in` (typically 3600) and, with offline_access, a
  `refresh_token`. **Every refresh returns a NEW refresh token and the old one is revoked** (§2.1):
  the newest is written to the database at once, encrypted, with `filter(pk=…).update(…)` so a
  concurrent save of the connection cannot overwrite it.
- Every grant or login holds an "API user" seat (§2.3). An "API Login Limit" answer means the seats
  are exhausted: that is `SeatsExhausted` (retryable later), never "wrong password", and it pauses the
  tenant's sign-ins (seats.py: an hour under OAuth, 10 minutes for cookie sessions).
- A new password grant opens a new session (a seat) while the old one lives on until signed out or an
  hour has passed (§2.1 "Sessions under OAuth"): so the old token is signed out (`POST
  /entity/auth/logout` with its Bearer header) before any new password grant, including after a
  rejected refresh token. A refresh reuses the grant's session and signs nothing out.
- Every worker process shares the connection's grant: renewals are serialised on the connection's row
  and a token another worker just obtained is adopted (`OAuthAuthenticator.renew`).
- Cookie login: `POST {instance}/entity/auth/login` with name/password/tenant/branch, 204 + cookies;
  `POST {instance}/entity/auth/logout` in `finally` (§2.2). The requests.Session keeps the cookies.

An authenticator is owned by one AcumaticaClient and uses the client's `request` (so its calls are
recorded as ApiCall rows with secrets redacted) with `authenticated=False`.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from integrations.base import errors

from . import seats

if TYPE_CHECKING:
    from .client import AcumaticaClient

log = logging.getLogger(__name__)

SCOPE = "api offline_access"
TOKEN_PATH = "/identity/connect/token"
LOGIN_PATH = "/entity/auth/login"
LOGOUT_PATH = "/entity/auth/logout"
EXPIRY_MARGIN = timedelta(seconds=60)


def is_login_limit(text: str) -> bool:
    return "api login limit" in (text or "").lower()


def seats_exhausted(body: str, status: int | None, conn: Any) -> errors.SeatsExhausted:
    """The licence refused a sign-in: pause the tenant (seats.pause) and say what to do."""
    return seats.pause(conn, body, status)


class Authenticator:
    """Extension contract: `apply(headers)`, `ensure()`, `reauthenticate() -> bool`, `logout()`."""

    mode = "none"

    def __init__(self, client: AcumaticaClient, connection: Any):
        self.client = client
        self.conn = connection
        self.lock = threading.RLock()

    def apply(self, headers: dict[str, str]) -> None:  # pragma: no cover - overridden
        pass

    def ensure(self) -> None:
        """Make sure a credential is ready before a request."""

    def reauthenticate(self) -> bool:
        return False

    def logout(self) -> None:
        """End of a unit of work: give a cookie session's seat back; OAuth keeps the shared grant."""

    def close(self) -> None:
        """The work is over: sign out whatever session this client still holds."""
        self.logout()

    def before_sign_in(self) -> None:
        """No sign-in while the tenant is paused for seats (a `connector check` tries anyway)."""
        if not getattr(self.client, "ignore_seat_pause", False):
            seats.ensure_not_paused(self.conn)

    def describe(self) -> str:
        return self.mode


class OAuthAuthenticator(Authenticator):
    """Bearer tokens; password grant (`oauth_password`) or refresh-token chain (`oauth_code`)."""

    def __init__(self, client: AcumaticaClient, connection: Any):
        super().__init__(client, connection)
        self.mode = connection.auth_mode
        self.access_token: str = connection.access_token or ""
        self.refresh_token: str = connection.refresh_token or ""
        self.expires_at = connection.token_expires_at
        client.register_secrets(
            connection.client_secret, connection.password, self.access_token, self.refresh_token
        )

    def describe(self) -> str:
        grant = "password grant" if self.mode == "oauth_password" else "authorization code + refresh token"
        return f"OAuth 2.0 {grant} (client {self.conn.client_id or '?'})"

    def apply(self, headers: dict[str, str]) -> None:
        self.ensure()
        headers["Authorization"] = f"Bearer {self.access_token}"

    def _valid(self) -> bool:
        return (
            bool(self.access_token)
            and self.expires_at is not None
            and (timezone.now() + EXPIRY_MARGIN < self.expires_at)
        )

    def ensure(self) -> None:
        with self.lock:
            if not self._valid():
                self.renew(replacing=self.access_token)

    def reauthenticate(self) -> bool:
        with self.lock:
            rejected, self.access_token = self.access_token, ""
            self.renew(replacing=rejected)
            return True

    def renew(self, *, replacing: str) -> None:  # noqa: C901 - one critical section, read in order
        """A fresh access token, renewed by one worker at a time.

        Every worker process signs in with the connection's one grant (one seat, one session, §2.1,
        §2.3), and a refresh token works once: two workers refreshing together would revoke each
        other's token and fall back to a second grant (a second seat) or, without a password, fail.
        So the renewal holds the connection's row (select_for_update; on SQLite the write lock), a
        token another worker stored meanwhile is adopted, and otherwise the newest refresh token in
        the database is the one used. `replacing` is the token being given up (expired or refused
        with 401): it is never adopted back.
        """
        conn = self.conn
        if conn.pk is None:
            self.obtain()
            return
        failure: errors.ConnectorError | None = None
        with transaction.atomic():
            row = type(conn).objects.select_for_update().get(pk=conn.pk)
            fresh = row.token_expires_at is not None and timezone.now() + EXPIRY_MARGIN < row.token_expires_at
            if row.access_token and row.access_token != replacing and fresh:
                self._adopt(row)
                return
            self.refresh_token = row.refresh_token or self.refresh_token
            old = [t for t in dict.fromkeys((row.access_token, replacing, self.access_token)) if t]
            try:
                self.obtain(old_tokens=old)
            except errors.ConnectorError as exc:
                failure = exc  # raised after the commit, so the failed call's ApiCall row is kept
        if failure is not None:
            raise failure

    def _adopt(self, row: Any) -> None:
        self.access_token, self.expires_at = row.access_token, row.token_expires_at
        self.refresh_token = row.refresh_token or self.refresh_token
        self.client.register_secrets(self.access_token, self.refresh_token)
        for name in ("access_token", "refresh_token", "token_expires_at"):
            setattr(self.conn, name, getattr(row, name))
        log.info("acumatica: using the access token another worker obtained")

    def expire(self) -> None:
        """Forget the access token (tests, and after a 401)."""
        self.access_token = ""

    def obtain(self, old_tokens: list[str] | None = None) -> None:
        """A fresh access token: refresh if we hold a refresh token, else the password grant.

        A refresh keeps the grant's session. Before a password grant (a new session) the sessions of
        `old_tokens` are signed out, so a rejected refresh never leaves a seat taken for an hour.
        """
        conn = self.conn
        old_tokens = (
            old_tokens if old_tokens is not None else ([self.access_token] if self.access_token else [])
        )
        if not conn.client_id:
            raise errors.ConfigurationError("Acumatica OAuth needs a client ID (GUID@Tenant)")
        self.before_sign_in()
        if self.refresh_token:
            try:
                self._token_request({"grant_type": "refresh_token", "refresh_token": self.refresh_token})
                return
            except errors.AuthFailed:
                # The grant is dead: give its session's seat back with the old token (§2.1 remedies).
                self.sign_out_tokens(old_tokens)
                old_tokens = []
                if self.mode != "oauth_password":
                    raise
                log.info("acumatica: refresh token rejected; signed out, falling back to the password grant")
                self.refresh_token = ""
        self.sign_out_tokens(old_tokens)
        if self.mode != "oauth_password":
            raise errors.AuthFailed(
                "no usable refresh token: authorize the connector again (authorization code flow)",
                system="acumatica",
            )
        if not conn.username or not conn.password:
            raise errors.ConfigurationError("Acumatica password grant needs a user name and password")
        self._token_request(
            {"grant_type": "password", "username": conn.username, "password": conn.password, "scope": SCOPE}
        )

    def _token_request(self, form: dict[str, str]) -> None:
        conn = self.conn
        form = {**form, "client_id": conn.client_id}
        if conn.client_secret:
            form["client_secret"] = conn.client_secret
        grant = form["grant_type"]
        try:
            response = self.client.request(
                "POST",
                self.client.instance_url + TOKEN_PATH,
                data=form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                authenticated=False,
                idempotent=False,
            )
        except errors.ConnectorError as exc:
            raise self._token_error(exc, grant) from exc
        seats.resume(conn)
        data = self.client.json(response) or {}
        token = data.get("access_token")
        if not token:
            raise errors.AuthFailed(
                "the token endpoint granted no access token: the OAuth client lacks the 'api' scope",
                system="acumatica",
                status=response.status_code,
            )
        self.access_token = token
        self.expires_at = timezone.now() + timedelta(seconds=int(data.get("expires_in") or 3600))
        new_refresh = data.get("refresh_token") or ""
        self.client.register_secrets(token, new_refresh)
        update: dict[str, Any] = {"access_token": token, "token_expires_at": self.expires_at}
        if new_refresh:
            # The old refresh token is revoked now: persist the new one before anything else.
            self.refresh_token = new_refresh
            update["refresh_token"] = new_refresh
        if conn.pk is not None:
            type(conn).objects.filter(pk=conn.pk).update(**update)
        for key, value in update.items():
            setattr(conn, key, value)
        log.info(
            "acumatica: obtained an access token by %s grant (expires in %ss)", grant, data.get("expires_in")
        )

    def sign_out_tokens(self, tokens: list[str]) -> None:
        """`POST /entity/auth/logout` with each token's Bearer header: its session ends and its seat is
        free at once (§2.1 "sign out using the old token"; logout skips the API queue, §2.2). A token
        the server already dropped answers harmlessly; a failure is logged, never raised."""
        for token in tokens:
            try:
                self.client.request(
                    "POST",
                    self.client.instance_url + LOGOUT_PATH,
                    headers={"Authorization": f"Bearer {token}"},
                    authenticated=False,
                    idempotent=True,
                )
                log.info("acumatica: signed out the previous OAuth session")
            except errors.ConnectorError as exc:
                log.warning("acumatica: signing out an old OAuth session failed: %s", exc)

    def close(self) -> None:
        """Sign the shared session out when no other worker is using it (password grant only).

        The next unit of work signs in with a new password grant. Under the authorization-code flow
        the session is kept: a refresh reuses it (§2.1), and whether a refresh token survives a
        sign-out is not documented, so signing out could strand the tenant until re-authorized.
        """
        conn = self.conn
        if self.mode != "oauth_password" or conn.pk is None:
            return
        with self.lock:
            holders = getattr(self.client, "holders", None)
            if holders is not None and holders.others() > 0:
                return  # another worker is inside a unit of work on this session: it closes it later
            with transaction.atomic():
                row = type(conn).objects.select_for_update().get(pk=conn.pk)
                tokens = [t for t in dict.fromkeys((row.access_token, self.access_token)) if t]
                if not tokens:
                    return
                self.sign_out_tokens(tokens)
                cleared = {"access_token": "", "refresh_token": "", "token_expires_at": None}
                type(conn).objects.filter(pk=conn.pk).update(**cleared)
            for name, value in cleared.items():
                setattr(conn, name, value)
            self.access_token, self.refresh_token, self.expires_at = "", "", None

    def _token_error(self, exc: errors.ConnectorError, grant: str) -> errors.ConnectorError:
        body = exc.body_excerpt or exc.message or ""
        if isinstance(exc, errors.SeatsExhausted):
            return exc  # classify_error already paused the tenant
        if is_login_limit(body) or is_login_limit(exc.message):
            return seats_exhausted(body, exc.status, self.conn)
        if exc.status in (400, 401):
            code = _oauth_error_code(body)
            if code == "invalid_client" or exc.status == 401:
                return errors.AuthFailed(
                    f"the OAuth client was rejected ({code or exc.status}): check the client ID "
                    f"({self.conn.client_id}) and client secret on Connected Applications (SM303010)",
                    system="acumatica",
                    status=exc.status,
                    body_excerpt=body,
                )
            if code == "invalid_grant" and grant == "password":
                return errors.AuthFailed(
                    f"the user name or password of {self.conn.username!r} was rejected (invalid_grant)",
                    system="acumatica",
                    status=exc.status,
                    body_excerpt=body,
                )
            if code == "invalid_grant":
                return errors.AuthFailed(
                    "the refresh token was rejected (revoked, already used or older than its lifetime)",
                    system="acumatica",
                    status=exc.status,
                    body_excerpt=body,
                )
            return errors.AuthFailed(
                f"token request refused: {code or body}",
                system="acumatica",
                status=exc.status,
                body_excerpt=body,
            )
        return exc


def _oauth_error_code(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    return str(data.get("error") or "") if isinstance(data, dict) else ""


class CookieAuthenticator(Authenticator):
    """Legacy `/entity/auth/login`; the caller brackets work with `client.session_scope()`."""

    mode = "cookie"

    def __init__(self, client: AcumaticaClient, connection: Any):
        super().__init__(client, connection)
        self.logged_in = False
        self.governor: seats.SeatGovernor | None = None
        client.register_secrets(connection.password)

    def _governor(self) -> seats.SeatGovernor | None:
        if self.governor is None and self.conn.pk is not None:
            self.governor = seats.SeatGovernor(
                self.conn, sleep=self.client.sleep, max_wait=self.client.max_inline_wait
            )
        return self.governor

    def describe(self) -> str:
        return f"cookie login as {self.conn.username!r}" + (
            f" (tenant {self.conn.tenant_login_name})" if self.conn.tenant_login_name else ""
        )

    def apply(self, headers: dict[str, str]) -> None:
        self.ensure()

    def ensure(self) -> None:
        with self.lock:
            if not self.logged_in:
                self.login()

    def reauthenticate(self) -> bool:
        with self.lock:
            self.client.session.cookies.clear()
            if self.logged_in and self.governor is not None:
                self.governor.give_back()  # a 401: the server no longer holds that session
            self.logged_in = False
            self.login()
            return True

    def login(self) -> None:
        conn = self.conn
        if not conn.username or not conn.password:
            raise errors.ConfigurationError("Acumatica cookie login needs a user name and password")
        body = {"name": conn.username, "password": conn.password}
        if conn.tenant_login_name:
            body["tenant"] = conn.tenant_login_name
        if conn.branch:
            body["branch"] = conn.branch
        self.before_sign_in()
        governor = self._governor()
        if governor is not None:
            governor.take()  # never more sessions than max_api_sessions, across every worker
        try:
            self._post_login(body)
        except BaseException:
            if governor is not None:
                governor.give_back()
            raise
        self.logged_in = True
        seats.resume(conn)
        log.info("acumatica: signed in (cookie session) as %s", conn.username)

    def _post_login(self, body: dict[str, str]) -> None:
        conn = self.conn
        try:
            self.client.request(
                "POST",
                self.client.instance_url + LOGIN_PATH,
                json_body=body,
                authenticated=False,
                idempotent=False,
            )
        except errors.SeatsExhausted:
            raise  # classify_error already paused the tenant
        except errors.ConnectorError as exc:
            text = f"{exc.message} {exc.body_excerpt}"
            if is_login_limit(text) or exc.status == 429:
                raise seats_exhausted(exc.body_excerpt, exc.status, conn) from exc
            if exc.status in (400, 401, 500):
                raise errors.AuthFailed(
                    f"cookie login refused for user {conn.username!r}: the user password (or tenant "
                    f"{conn.tenant_login_name!r}) was rejected — {exc.message}",
                    system="acumatica",
                    status=exc.status,
                    body_excerpt=exc.body_excerpt,
                ) from exc
            raise

    def logout(self) -> None:
        with self.lock:
            if not self.logged_in:
                return
            try:
                self.client.request(
                    "POST", self.client.instance_url + LOGOUT_PATH, authenticated=False, idempotent=True
                )
            except errors.ConnectorError as exc:
                log.warning("acumatica: logout failed (the session times out after 10 minutes): %s", exc)
            finally:
                self.logged_in = False
                self.client.session.cookies.clear()
                if self.governor is not None:
                    self.governor.give_back()


def authenticator_for(client: AcumaticaClient, connection: Any) -> Authenticator:
    if connection.auth_mode == "cookie":
        return CookieAuthenticator(client, connection)
    if connection.auth_mode in ("oauth_password", "oauth_code"):
        return OAuthAuthenticator(client, connection)
    raise errors.ConfigurationError(f"unknown Acumatica auth mode {connection.auth_mode!r}")
