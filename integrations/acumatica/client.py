"""Acumatica contract-based REST client (Default endpoint, tested against 24.200.001).

Module map: client.py (transport, auth hooks, errors, generic get/iter/put/actions), documents.py
(bills, POs, employees, vendors, accounts), auth.py (OAuth / cookie sign-in), values.py (value
wrapping, $filter), error_bodies.py (422 echo / HttpError parsing), check.py (`connector check`).

One client per connection and process; `client_for(connection)` builds it. All HTTP behaviour
(timeouts, retries, ApiCall recording, redaction, the shared concurrency budget) comes from
`integrations.base.http.HttpClient`; this module adds Acumatica's URLs, auth, error shapes and one
small method per operation. Facts and their sources: /work/shared/reference/acumatica.md (§n below).

Quirks handled here:
- Not-found on GET by key is HTTP **500** `NoEntitySatisfiesTheConditionException` (§6.1) → NotFound.
- 422 echoes the entity with `error` on each offending value, also inside `Details[]` (§6.2).
- 429 carries no Retry-After (§6.3): our own backoff; a long storm raises RateLimited(retry_after).
- Lists have no count (§4.2): `$top`/`$skip` pages until a short page.
- A long-running action answers 202 + Location; nothing else may use the session until the status
  URL answers 204 (§5.2): a per-client lock serialises every request, actions hold it while polling.
  Under OAuth every worker process shares one grant, and one grant is one session (§2.1), so the
  session is shared across processes too. A readers-writer lock made of two shared budgets keeps a
  long operation alone in it: every other request holds a lease on the session's *users* budget while
  it is sent, and enters only when the *gate* (one slot) is free; a long operation takes the gate, then
  waits until no user lease is left before it POSTs. Each side takes its own slot before it looks at
  the other's, so of two that start together at least one sees the other and waits (bounded by
  max_inline_wait, then errors.Locked with a retry): no request can slip in between a look and a send.
- Field names differ between Bill and PurchaseOrder (§3, §8.8): `Bill.Vendor` / `PurchaseOrder.VendorID`,
  `Bill.BranchID` / `PurchaseOrder.Branch`, PO key field `Type` (not OrderType).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from integrations.base import errors
from integrations.base.http import HttpClient

from . import values
from .auth import Authenticator, authenticator_for, is_login_limit, seats_exhausted
from .documents import DocumentsMixin
from .error_bodies import collect_field_errors, is_http_error, json_or_none, reclass
from .files import FilesMixin
from .seats import SessionHolders
from .values import Record

__all__ = ["AcumaticaClient", "EndpointInfo", "EndpointNotListed", "client_for", "collect_field_errors"]

log = logging.getLogger(__name__)

KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "Bill": ("Type", "ReferenceNbr"),
    "PurchaseOrder": ("Type", "OrderNbr"),
    "Employee": ("EmployeeID",),
    "Vendor": ("VendorID",),
    "Account": ("AccountCD",),
}
LOCK_MARKERS = ("another process has updated", "locked", "long operation")
SESSION_GATE_POLL = 0.25  # seconds between looks at the gate while another worker's action runs
SESSION_BUSY_RETRY = 10.0  # a task that waited its inline limit at the gate is retried after this
SESSION_USERS = 64  # slots of the session's users budget (requests in flight; a lease, LEASE_TTL)
RATE_LIMIT_RETRY_AFTER = 30.0  # no Retry-After from Acumatica: reschedule a long 429 storm this late


class EndpointNotListed(errors.ConfigurationError):
    """The configured endpoint name/version is not served by this instance."""

    def __init__(self, message: str, available: list[str]):
        super().__init__(message)
        self.available = available


@dataclass
class EndpointInfo:
    build_version: str
    endpoints: list[dict[str, Any]]

    def versions_of(self, name: str) -> list[str]:
        return sorted({e.get("version", "") for e in self.endpoints if e.get("name") == name})


@dataclass
class AcumaticaClient(DocumentsMixin, FilesMixin, HttpClient):
    connection: Any = None
    poll_interval: float = 1.0
    action_deadline: float = 300.0
    clock: Callable[[], float] = time.monotonic
    session_lock: Any = field(default_factory=threading.RLock)
    ignore_seat_pause: bool = False  # `connector check` signs in once even while the tenant is paused

    system = "acumatica"
    sensitive_headers = ("Authorization", "Cookie")

    def __post_init__(self) -> None:
        if self.read_timeout is None:
            self.read_timeout = 180.0  # requests may sit silently in Acumatica's API queue (§6.3)
        super().__post_init__()
        conn = self.connection
        self.instance_url = conn.instance_url.rstrip("/")
        self.session.headers["Accept"] = "application/json"
        self.auth: Authenticator = authenticator_for(self, conn)
        self._scope_depth = 0
        self.session_gate: Any = None
        self.session_users: Any = None
        self._holding_gate = False
        self.holders: SessionHolders | None = None
        if conn.auth_mode != "cookie" and getattr(conn, "pk", None) is not None:
            self.holders = SessionHolders(conn)  # who still uses the shared OAuth session (close())
        if self.rate_limiter is None and getattr(conn, "pk", None) is not None:
            from integrations.base.ratelimit import budget_for

            self.rate_limiter = budget_for(f"acumatica:{conn.pk}", max_in_flight=conn.max_concurrency or 2)
            if conn.auth_mode != "cookie":  # a cookie login is a session of this client's own
                self.session_gate = budget_for(f"acumatica-session:{conn.push_uuid}", max_in_flight=1)
                self.session_users = budget_for(
                    f"acumatica-session-users:{conn.push_uuid}", max_in_flight=SESSION_USERS
                )

    # ---- base hooks ---------------------------------------------------------------------------
    def apply_auth(self, headers: dict[str, str]) -> None:
        self.auth.apply(headers)

    def reauthenticate(self) -> bool:
        log.info("acumatica: 401, signing in again once (%s)", self.auth.describe())
        return self.auth.reauthenticate()

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        with self.session_lock, self._session_user(method, path_or_url, kwargs):
            try:
                return super().request(method, path_or_url, **kwargs)
            except errors.RateLimited as exc:
                if exc.retry_after is None:
                    exc.retry_after = RATE_LIMIT_RETRY_AFTER
                raise
            except errors.PermanentError as exc:
                if exc.status == 500 and exc.vendor_code.startswith("PX."):
                    exc.outcome_unknown = False  # the graph refused and rolled back: nothing happened
                raise

    def parse_error(self, response: requests.Response) -> tuple[str | None, dict[str, str]]:
        data = json_or_none(response)
        if not isinstance(data, dict):
            return errors.body_excerpt(response) or response.reason or None, {}
        if is_http_error(data):
            message = data.get("exceptionMessage") or data.get("message") or ""
            inner = data.get("innerException")
            if isinstance(inner, dict) and inner.get("exceptionMessage"):
                message = f"{message} ({inner['exceptionMessage']})"
            model_state = {
                k: "; ".join(v) for k, v in (data.get("modelState") or {}).items() if isinstance(v, list)
            }
            return message or None, model_state
        field_errors = collect_field_errors(data)
        message = data.get("error") or ("; ".join(f"{k}: {v}" for k, v in field_errors.items())) or None
        return message, field_errors

    def classify_error(
        self, response: requests.Response, error: errors.ConnectorError
    ) -> errors.ConnectorError:
        data = json_or_none(response)
        exc_type = str(data.get("exceptionType") or "") if isinstance(data, dict) else ""
        error.vendor_code = exc_type
        text = f"{error.message} {error.body_excerpt}".lower()
        status = response.status_code
        if "NoEntitySatisfiesTheCondition" in exc_type or "no entity satisfies the condition" in text:
            return reclass(error, errors.NotFound)
        if is_login_limit(text):
            return seats_exhausted(error.body_excerpt, status, self.connection)
        if status == 401:
            return reclass(
                error,
                errors.AuthFailed,
                message=(
                    f"Acumatica refused the credentials with 401 ({self.auth.describe()}): {error.message}"
                ),
            )
        if any(marker in text for marker in LOCK_MARKERS) and status in (400, 422, 500):
            return reclass(error, errors.Locked)
        if status == 500 and exc_type.startswith("PX."):
            # A PX.* exception is the application refusing the request (transaction rolled back), e.g.
            # a release from the wrong status or "Optimization cannot be performed": retrying the
            # same request cannot help. System.* / HTML 500s stay retryable (Unavailable).
            return reclass(error, errors.Invalid)
        return error

    def json(self, response: requests.Response) -> Any:
        """JSON with numbers as Decimal (amounts are money); a cut-off body is UnexpectedResponse."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise errors.UnexpectedResponse(
                "expected JSON, got something else (truncated or not JSON)",
                system=self.system,
                status=response.status_code,
                body_excerpt=errors.body_excerpt(response),
            ) from exc

    # ---- sessions -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def session_scope(self) -> Iterator[AcumaticaClient]:
        """One sign-in for a unit of work; cookie sessions are signed out in `finally` (§2.2, §8.1)."""
        with self.session_lock:
            self._scope_depth += 1
            if self._scope_depth == 1 and self.holders is not None:
                self.holders.enter()
        try:
            yield self
        finally:
            with self.session_lock:
                self._scope_depth -= 1
                if self._scope_depth == 0:
                    if self.holders is not None:
                        self.holders.leave()
                    self.auth.logout()

    def close(self) -> None:
        """The worker is done with Acumatica: sign out the session it holds — a cookie session, or the
        shared OAuth session once no other worker is inside a unit of work on it (auth.close)."""
        with self.session_lock:
            if self._scope_depth == 0:
                self.auth.close()

    # ---- the session shared by every worker (module docstring) -------------------------------
    def _take_gate(self, what: str) -> bool:
        """Take the gate for a long operation, waiting (up to max_inline_wait) for another worker's to
        end; True = taken (False: this connection has no gate)."""
        gate, waited = self.session_gate, 0.0
        if gate is None:
            return False
        while gate.acquire(write=False) > 0:
            if waited >= self.max_inline_wait:
                raise self._session_busy(what)
            self.sleep(SESSION_GATE_POLL)
            waited += SESSION_GATE_POLL
        # The gate is ours: new requests stay out; wait for those already in the session to finish.
        while self.session_users is not None and self.session_users.in_flight() > 0:
            if waited >= self.max_inline_wait:
                gate.release(write=False)
                raise self._session_busy(what)
            self.sleep(SESSION_GATE_POLL)
            waited += SESSION_GATE_POLL
        return True

    @contextlib.contextmanager
    def _session_user(self, method: str, path_or_url: str, kwargs: dict[str, Any]) -> Iterator[None]:
        """Hold a user lease of the shared session while one request is sent (module docstring)."""
        users = self.session_users
        if not kwargs.get("authenticated", True) or self._holding_gate or users is None:
            if kwargs.get("authenticated", True) and not self._holding_gate:
                self._pass_session_gate(f"{method} {path_or_url}")
            yield
            return
        what, waited = f"{method} {path_or_url}", 0.0
        while True:
            waited = self._pass_session_gate(what, waited)
            if users.acquire(write=False) > 0:  # all user slots taken: look again shortly
                if waited >= self.max_inline_wait:
                    raise self._session_busy(what)
                waited += SESSION_GATE_POLL
                self.sleep(SESSION_GATE_POLL)
                continue
            if not self.session_gate.in_flight():
                break
            users.release(write=False)  # a long operation took the gate meanwhile: it goes first
        try:
            yield
        finally:
            users.release(write=False)

    def _pass_session_gate(self, what: str, waited: float = 0.0) -> float:
        """Wait while another worker holds the gate; only a look, so a worker killed here holds nothing.
        Returns the time waited so far (the bound, max_inline_wait, covers the whole entry)."""
        gate = self.session_gate
        while gate is not None and gate.in_flight():
            if waited >= self.max_inline_wait:
                raise self._session_busy(what)
            self.sleep(SESSION_GATE_POLL)
            waited += SESSION_GATE_POLL
        return waited

    def _session_busy(self, what: str) -> errors.Locked:
        return errors.Locked(
            f"{what}: another worker's long operation (e.g. a release) is running in the shared "
            "Acumatica session",
            system=self.system,
            retry_after=SESSION_BUSY_RETRY,
        )

    @contextlib.contextmanager
    def _exclusive_session(self, what: str) -> Iterator[None]:
        """Hold the gate for a long operation: the POST and its polling run alone in the session. The
        slot is a lease (ratelimit.LEASE_TTL): a worker killed mid-operation cannot hold it for ever."""
        if self._holding_gate or not self._take_gate(what):
            yield
            return
        self._holding_gate = True
        try:
            yield
        finally:
            self._holding_gate = False
            self.session_gate.release(write=False)

    # ---- discovery ----------------------------------------------------------------------------
    def discover(self) -> EndpointInfo:
        """GET {instance}/entity: the build and the endpoints (works without signing in, §1.2)."""
        data = self.json(self.request("GET", self.instance_url + "/entity", authenticated=False)) or {}
        return EndpointInfo(
            build_version=str((data.get("version") or {}).get("acumaticaBuildVersion") or ""),
            endpoints=list(data.get("endpoints") or []),
        )

    def verify_endpoint(self, info: EndpointInfo | None = None) -> EndpointInfo:
        info = info or self.discover()
        conn = self.connection
        listed = info.versions_of(conn.endpoint_name)
        if conn.endpoint_version not in listed:
            where = (
                f"versions listed for {conn.endpoint_name}: {', '.join(listed)}"
                if listed
                else f"no endpoint named {conn.endpoint_name!r} is listed"
            )
            raise EndpointNotListed(
                f"endpoint {conn.endpoint_name}/{conn.endpoint_version} is not served by "
                f"{self.instance_url} (build {info.build_version or '?'}); {where}",
                listed,
            )
        return info

    # ---- generic entity operations -------------------------------------------------------------
    def get(
        self,
        entity: str,
        keys: Iterable[Any],
        *,
        expand: Iterable[str] | str | None = None,
        select: Iterable[str] | str | None = None,
        custom: Iterable[str] | str | None = None,
    ) -> Record:
        """GET /{Entity}/{key1}/{key2} (§4.2); a key containing '/' is looked up by $filter instead."""
        keys = [str(k) for k in keys]
        if any("/" in k for k in keys):
            names = KEY_FIELDS[entity]
            flt = values.all_of(*(values.cond(n, "eq", k) for n, k in zip(names, keys, strict=True)))
            for record in self.iter(
                entity, filter=flt, expand=expand, select=select, custom=custom, page_size=2
            ):
                return record
            raise errors.NotFound(f"no {entity} {'/'.join(keys)}", system=self.system)
        path = f"/{entity}/" + "/".join(values.encode_key(k) for k in keys)
        query = values.encode_query(values.build_query(expand=expand, select=select, custom=custom))
        with self.session_scope():
            return values.unwrap(self.json(self.request("GET", path + (f"?{query}" if query else ""))))

    def iter(
        self,
        entity: str,
        *,
        filter: str | None = None,
        select: Iterable[str] | str | None = None,  # noqa: A002
        expand: Iterable[str] | str | None = None,
        custom: Iterable[str] | str | None = None,
        page_size: int = 100,
    ) -> Iterator[Record]:
        """Every record matching, page by page with $top/$skip; one page in memory (§4.2: no count)."""
        with self.session_scope():
            skip = 0
            while True:
                params = values.build_query(
                    filter=filter, select=select, expand=expand, custom=custom, top=page_size, skip=skip
                )
                page = self.json(self.request("GET", f"/{entity}?{values.encode_query(params)}")) or []
                if not isinstance(page, list):
                    raise errors.UnexpectedResponse(f"{entity} list is not a JSON array", system=self.system)
                for item in page:
                    yield values.unwrap(item)
                if len(page) < page_size:
                    return
                skip += len(page)

    def put(
        self,
        entity: str,
        fields: dict[str, Any],
        *,
        mode: str | None = None,
        custom: dict[str, Any] | None = None,
        expand: Iterable[str] | str | None = None,
        select: Iterable[str] | str | None = None,
    ) -> Record:
        """PUT /{Entity} upsert (§4.3). mode "create" sends If-None-Match: *, "update" If-Match: *.

        Only an update is retried blindly: a create (auto-numbered) that timed out must be reconciled
        by the caller's correlation key (e.g. VendorRef) before it is sent again (§8.10).
        """
        headers = {}
        if mode == "create":
            headers["If-None-Match"] = "*"
        elif mode == "update":
            headers["If-Match"] = "*"
        elif mode is not None:
            raise ValueError("mode must be None, 'create' or 'update'")
        query = values.encode_query(values.build_query(expand=expand, select=select))
        with self.session_scope():
            response = self.request(
                "PUT",
                f"/{entity}" + (f"?{query}" if query else ""),
                json_body=values.wrap(fields, custom=custom),
                headers=headers,
                idempotent=mode == "update",
            )
            return values.unwrap(self.json(response))

    def invoke_action(
        self,
        entity: str,
        action: str,
        keys: dict[str, Any],
        *,
        parameters: dict[str, Any] | None = None,
        deadline: float | None = None,
    ) -> None:
        """POST /{Entity}/{Action} then poll the 202 Location until 204 (§5.1, §5.2).

        The session lock and the shared session gate are held throughout, so neither this client nor
        another worker sends anything else in the session meanwhile. When the deadline passes the
        outcome is unknown: the caller re-reads the record before trying again.
        """
        body: dict[str, Any] = {"entity": values.wrap(keys)}
        if parameters:
            body["parameters"] = parameters
        deadline_at = self.clock() + (self.action_deadline if deadline is None else deadline)
        with self.session_lock, self.session_scope(), self._exclusive_session(f"{entity} {action}"):
            response = self.request("POST", f"/{entity}/{action}", json_body=body, idempotent=False)
            location = response.headers.get("Location")
            polled = response.status_code == 202
            while response.status_code == 202:
                if not location:
                    raise errors.UnexpectedResponse(
                        f"{action} answered 202 without a Location", system=self.system, status=202
                    )
                if self.clock() >= deadline_at:
                    raise errors.Timeout(
                        f"{entity} {action} on {keys} still running after "
                        f"{self.action_deadline if deadline is None else deadline:.0f}s",
                        system=self.system,
                        status=202,
                        outcome_unknown=True,
                    )
                self.sleep(self.poll_interval)
                response = self.request("GET", self._absolute(location))
            if polled and response.status_code != 204:
                # The official client treats any status URL answer but 202/204 as a failure (§5.2):
                # a 200 does not say the operation completed.
                raise errors.UnexpectedResponse(
                    f"{entity} {action} status URL answered {response.status_code}, not 202/204",
                    system=self.system,
                    status=response.status_code,
                    outcome_unknown=True,
                )
            log.info("acumatica: %s %s on %s completed", entity, action, keys)

    def _absolute(self, location: str) -> str:
        if location.startswith(("http://", "https://")):
            return location
        parts = urlsplit(self.instance_url)
        return (
            f"{parts.scheme}://{parts.netloc}{location}"
            if location.startswith("/")
            else self.url_for(location)
        )


def client_for(connection: Any, **kwargs: Any) -> AcumaticaClient:
    """The client flows and `connector check` use for one AcumaticaConnection."""
    return AcumaticaClient(
        base_url=connection.endpoint_base_url, tenant_id=connection.tenant_id, connection=connection, **kwargs
    )
