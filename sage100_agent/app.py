"""The agent's WSGI application: routing, authentication, idempotency, drain/resume, error envelope.

Pure WSGI (no framework) so the agent runs with nothing but the standard library plus the HTTP server.
The contract is written down in docs/sage100-agent.md; keep the two in step.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

from . import __version__
from .backend import Backend
from .config import AgentConfig
from .fields import normalize_division, parse_create_request, parse_utc, parse_vendor_id, utc_to_sage
from .ledger import CONFLICT, IN_FLIGHT, NEW, RECONCILE, REPLAY, Ledger, fingerprint
from .model import AgentError, CreateResult, iso_utc
from .nonces import NonceStore, NonceStoreFull
from .signing import HEADER_IDEMPOTENCY_KEY, SignatureError, verify_request

log = logging.getLogger("sage100_agent")

StartResponse = Callable[..., Any]
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    423: "Locked",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class Request:
    method: str
    target: str  # path?query exactly as sent: what the signature covers
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    client: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise AgentError("VALIDATION_ERROR", "body is not valid JSON") from None

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise AgentError("VALIDATION_ERROR", f"{name} must be an integer", field=name) from None
        if not low <= value <= high:
            raise AgentError("VALIDATION_ERROR", f"{name} must be between {low} and {high}", field=name)
        return value


class DrainState:
    """``running`` -> ``draining`` (in-flight calls finish, new ones get 503) -> ``paused`` -> ``running``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._cond = threading.Condition()
        self.mode = "paused" if ledger.get_state("mode") == "paused" else "running"
        self.in_flight = 0

    def check(self) -> None:
        if self.mode != "running":
            raise AgentError(
                "SAGE_PAUSED",
                f"the agent is {self.mode} for Sage maintenance",
                step="session",
                retry_after=60,
            )

    def enter(self) -> None:
        with self._cond:
            self.check()
            self.in_flight += 1

    def leave(self) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        with self._cond:
            if self.mode == "running":
                self.mode = "draining"
            done = self._cond.wait_for(lambda: self.in_flight == 0, timeout=timeout)
            if done:
                self.mode = "paused"
                self._ledger.set_state("mode", "paused")
            return done

    def resume(self) -> None:
        with self._cond:
            self.mode = "running"
            self._ledger.set_state("mode", "running")


Handler = Callable[[Request], tuple[int, dict[str, Any]]]


class AgentApp:
    """WSGI callable. ``backend`` and ``ledger`` are exposed for tests and the connector's sandbox."""

    def __init__(self, config: AgentConfig, backend: Backend, ledger: Ledger) -> None:
        self.config = config
        self.backend = backend
        self.ledger = ledger
        self.tz = config.timezone()
        self.state = DrainState(ledger)
        # Issue 18: each signed request is accepted once; nonces persist next to the ledger.
        self.nonces = NonceStore(ledger.path, config.max_skew_seconds, config.max_nonces)
        read, create, admin = ("read",), ("po:create",), ("admin",)
        # (method, pattern, handler, accepted scopes, touches_backend)
        self._routes: list[tuple[str, re.Pattern[str], Handler, tuple[str, ...], bool]] = [
            ("GET", re.compile(r"^/v1/ping$"), self.ping, read, False),
            ("GET", re.compile(r"^/v1/vendors$"), self.list_vendors, read, True),
            ("GET", re.compile(r"^/v1/vendors/(?P<vendor_id>[^/]+)$"), self.get_vendor, read, True),
            ("GET", re.compile(r"^/v1/gl-accounts$"), self.list_gl_accounts, read, True),
            ("GET", re.compile(r"^/v1/gl-accounts/(?P<account>[^/]+)$"), self.get_gl_account, read, True),
            ("POST", re.compile(r"^/v1/purchase-orders$"), self.create_po, create, True),
            ("GET", re.compile(r"^/v1/purchase-orders$"), self.list_pos, read, True),
            ("GET", re.compile(r"^/v1/purchase-orders/(?P<po_number>[^/]+)$"), self.get_po, read, True),
            ("GET", re.compile(r"^/v1/selftest$"), self.selftest, ("selftest", "admin"), True),
            ("POST", re.compile(r"^/v1/admin/drain$"), self.drain, admin, False),
            ("POST", re.compile(r"^/v1/admin/resume$"), self.resume, admin, False),
        ]

    def _credentials(self) -> tuple[dict[str, str], dict[str, Any]]:
        """Every API key valid now (two per client during a rotation) -> secret, and -> its client."""
        keys: dict[str, str] = {}
        owners: dict[str, Any] = {}
        now = datetime.now(UTC)
        for client in self.config.clients:
            for api_key, secret in client.credentials(now).items():
                keys[api_key], owners[api_key] = secret, client
        return keys, owners

    # --- WSGI plumbing -------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers: list[tuple[str, str]] = []
        try:
            status, body, headers = self._handle(environ)
        except AgentError as exc:
            status, body = exc.status, _dump(exc.envelope())
            if exc.retry_after:
                headers.append(("Retry-After", str(exc.retry_after)))
        except Exception:
            log.exception("unhandled error")
            status, body = 500, _dump(AgentError("INTERNAL_ERROR", "internal error").envelope())
        headers += [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("X-Agent-Version", __version__),
            ("Cache-Control", "no-store"),
        ]
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]

    def _read(self, environ: dict[str, Any]) -> Request:
        path = environ.get("PATH_INFO", "") or "/"
        query_string = environ.get("QUERY_STRING", "")
        target = environ.get("REQUEST_URI") or quote(path) + (f"?{query_string}" if query_string else "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise AgentError("VALIDATION_ERROR", "bad Content-Length") from None
        if length > self.config.max_body_bytes:
            raise AgentError("PAYLOAD_TOO_LARGE", f"body exceeds {self.config.max_body_bytes} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
        return Request(environ["REQUEST_METHOD"].upper(), target, path, query, headers, body)

    def _handle(self, environ: dict[str, Any]) -> tuple[int, bytes, list[tuple[str, str]]]:
        req = self._read(environ)
        route = None
        allowed = False
        for method, pattern, handler, scope, touches in self._routes:
            match = pattern.match(req.path)
            if match:
                allowed = True
                if method == req.method:
                    route = (handler, scope, touches)
                    req.params = match.groupdict()
                    break
        if route is None:
            if allowed:
                raise AgentError("METHOD_NOT_ALLOWED", f"{req.method} is not allowed on {req.path}")
            raise AgentError("NOT_FOUND", f"no such endpoint {req.path}")
        handler, scopes, touches = route
        keys, owners = self._credentials()
        try:
            api_key = verify_request(
                keys,
                req.method,
                req.target,
                req.headers,
                req.body,
                max_skew=self.config.max_skew_seconds,
                remember_nonce=lambda key, nonce, ts: self.nonces.remember(owners[key].name, nonce, ts),
            )
        except SignatureError as exc:
            log.warning("auth refused (%s) for %s %s", exc.reason, req.method, req.path)
            raise AgentError("AUTH_INVALID", "authentication failed", step="auth") from None
        except NonceStoreFull as exc:
            log.warning("auth refused (nonce store full: %s) for %s %s", exc, req.method, req.path)
            raise AgentError(
                "RATE_LIMITED", "too many signed requests; retry later", step="auth", retry_after=5
            ) from None
        client = owners[api_key]
        req.client = client.name
        if not set(scopes) & set(client.scopes):
            log.warning(
                "auth refused (scope %s) for %s on %s %s", scopes[0], client.name, req.method, req.path
            )
            raise AgentError("AUTH_FORBIDDEN", f"this key lacks the {scopes[0]!r} scope", step="auth")
        dry_run = req.query.get("dry_run", "").lower() in ("1", "true", "yes")
        if req.method == "POST" and not dry_run:
            return self._idempotent(req, handler, touches)
        status, payload = self._run(req, handler, touches)
        return status, _dump(payload), []

    def _run(self, req: Request, handler: Handler, touches: bool) -> tuple[int, dict[str, Any]]:
        if not touches:
            return handler(req)
        self.state.enter()
        try:
            return handler(req)
        finally:
            self.state.leave()

    def _idempotent(
        self, req: Request, handler: Handler, touches: bool
    ) -> tuple[int, bytes, list[tuple[str, str]]]:
        key = req.headers.get(HEADER_IDEMPOTENCY_KEY, "").strip()
        if not key or len(key) > 200:
            raise AgentError(
                "VALIDATION_ERROR",
                "Idempotency-Key header (1-200 characters) is required",
                field=HEADER_IDEMPOTENCY_KEY,
            )
        if touches:  # refuse before claiming, so a paused agent remembers nothing
            self.state.check()
        claim = self.ledger.claim(
            key, req.client, req.method, req.path, fingerprint(req.method, req.target, req.body)
        )
        if claim.outcome == REPLAY:
            return claim.status or 200, claim.body or b"", [("Idempotent-Replay", "true")]
        if claim.outcome == CONFLICT:
            raise AgentError(
                "IDEMPOTENCY_CONFLICT",
                "this Idempotency-Key was used with a different request",
                field=HEADER_IDEMPOTENCY_KEY,
            )
        if claim.outcome == IN_FLIGHT:
            raise AgentError(
                "IDEMPOTENCY_IN_FLIGHT",
                "a request with this Idempotency-Key is still running",
                field=HEADER_IDEMPOTENCY_KEY,
                retry_after=2,
            )
        assert claim.outcome in (NEW, RECONCILE)
        req.params["reconcile"] = "1" if claim.outcome == RECONCILE else ""
        try:
            status, payload = self._run(req, handler, touches)
        except AgentError as exc:
            if exc.code == "TIMEOUT":
                self.ledger.mark_unknown(key)
            elif exc.retryable or exc.status >= 500:
                self.ledger.release(key)
            else:
                self.ledger.complete(key, exc.status, _dump(exc.envelope()))
            raise
        except BaseException:
            self.ledger.mark_unknown(key)
            raise
        body = _dump(payload)
        self.ledger.complete(key, status, body)
        return status, body, []

    # --- handlers ------------------------------------------------------------------------------------

    def ping(self, req: Request) -> tuple[int, dict[str, Any]]:
        facts: dict[str, Any] = {"backend": self.backend.name, "company": self.config.company}
        if self.state.mode == "running":
            self.state.enter()
            try:
                facts.update(self.backend.ping())
            finally:
                self.state.leave()
        now = datetime.now(UTC)
        return 200, {
            **facts,
            "agent_version": __version__,
            "state": self.state.mode,
            "paused": self.state.mode != "running",
            "in_flight": self.state.in_flight,
            "server_time": iso_utc(now),
            "server_local_time": now.astimezone(self.tz).isoformat()
            if self.tz
            else now.astimezone().isoformat(),
            "server_tz": self.config.server_timezone or "local",
        }

    def list_vendors(self, req: Request) -> tuple[int, dict[str, Any]]:
        limit = req.int_arg("limit", 100, 1, 1000)
        division = normalize_division(req.query["division"]) if req.query.get("division") else None
        items = self.backend.search_vendors(
            req.query.get("q", "").strip(), division, req.query.get("cursor"), limit + 1
        )
        more = len(items) > limit
        items = items[:limit]
        return 200, {
            "items": [v.to_json() for v in items],
            "next_cursor": f"{items[-1].division}-{items[-1].vendor_no}" if more else None,
        }

    def get_vendor(self, req: Request) -> tuple[int, dict[str, Any]]:
        division, vendor_no = parse_vendor_id(req.params["vendor_id"])
        return 200, self.backend.get_vendor(division, vendor_no).to_json()

    def list_gl_accounts(self, req: Request) -> tuple[int, dict[str, Any]]:
        limit = req.int_arg("limit", 500, 1, 5000)
        status = req.query.get("status", "").upper() or None
        if status not in (None, "A", "I", "D"):
            raise AgentError("VALIDATION_ERROR", "status must be A, I or D", field="status")
        items = self.backend.list_gl_accounts(
            req.query.get("q", "").strip(), status, req.query.get("cursor"), limit + 1
        )
        more = len(items) > limit
        items = items[:limit]
        return 200, {
            "items": [a.to_json() for a in items],
            "next_cursor": items[-1].account if more else None,
        }

    def get_gl_account(self, req: Request) -> tuple[int, dict[str, Any]]:
        return 200, self.backend.get_gl_account(req.params["account"].strip().upper()).to_json()

    def create_po(self, req: Request) -> tuple[int, dict[str, Any]]:
        request, notices = parse_create_request(req.json(), self.config.rules)
        dry_run = req.query.get("dry_run", "").lower() in ("1", "true", "yes")
        if req.params.get("reconcile"):
            # A previous attempt with this key ended with an unknown outcome: look before writing (§6).
            existing = self.backend.find_by_external_id(request.external_id)
            if existing is not None:
                result = CreateResult(po=existing, warnings=notices)
                return 201, {**result.to_json(), "reconciled": True}
        result = self.backend.create_purchase_order(request, dry_run=dry_run)
        result.warnings[:0] = notices
        return (200 if dry_run else 201), result.to_json()

    def get_po(self, req: Request) -> tuple[int, dict[str, Any]]:
        po_number = req.params["po_number"].strip().upper()
        po_number = po_number.zfill(7) if po_number.isdigit() else po_number
        return 200, self.backend.get_purchase_order(po_number).to_json()

    def list_pos(self, req: Request) -> tuple[int, dict[str, Any]]:
        external_id = req.query.get("external_id", "").strip()
        if external_id:
            found = self.backend.find_by_external_id(external_id)
            if found is None:
                raise AgentError("NOT_FOUND", "no purchase order has this external id", field="external_id")
            return 200, found.to_json()
        if not req.query.get("updated_since"):
            raise AgentError(
                "VALIDATION_ERROR", "give updated_since (UTC ISO-8601) or external_id", field="updated_since"
            )
        since = parse_utc(req.query["updated_since"], "updated_since")
        overlap = req.int_arg("overlap_seconds", 0, 0, 7 * 86400)
        limit = req.int_arg("limit", 200, 1, 2000)
        effective = since - timedelta(seconds=overlap)
        after = _decode_cursor(req.query.get("cursor"))
        day = datetime.strptime(utc_to_sage(effective, self.tz)[0], "%Y%m%d").date()
        include_lines = "lines" in req.query.get("include", "").split(",")
        floor = iso_utc(effective)
        rows = [
            po
            for po in self.backend.updated_on_or_after(day, include_lines)
            if po.updated_at
            and po.updated_at >= floor
            and (after is None or (po.updated_at, po.po_number) > after)
        ]
        rows.sort(key=lambda po: (po.updated_at or "", po.po_number))
        page = rows[:limit]
        next_cursor = (
            _encode_cursor(page[-1].updated_at or "", page[-1].po_number) if len(rows) > limit else None
        )
        return 200, {
            "items": [po.to_json(include_lines) for po in page],
            "next_cursor": next_cursor,
            "effective_since": floor,
            "server_time": iso_utc(datetime.now(UTC)),
        }

    def selftest(self, req: Request) -> tuple[int, dict[str, Any]]:
        """Objects, methods and columns the agent uses, checked without writing (selftest.py)."""
        report = self.backend.selftest()
        log.info("selftest by %s: %s", req.client, "ok" if report.ok else "problems found")
        return 200, {**report.to_json(), "table": report.table()}

    def drain(self, req: Request) -> tuple[int, dict[str, Any]]:
        body = req.json() or {}
        timeout = (
            float(body.get("timeout_seconds", self.config.drain_timeout_seconds))
            if isinstance(body, dict)
            else self.config.drain_timeout_seconds
        )
        drained = self.state.drain(max(0.0, min(timeout, 600.0)))
        released = self.backend.release_sessions() if drained else 0
        log.warning("drain requested by %s: drained=%s released=%s", req.client, drained, released)
        return 200, {
            "state": self.state.mode,
            "drained": drained,
            "in_flight": self.state.in_flight,
            "released_sessions": released,
        }

    def resume(self, req: Request) -> tuple[int, dict[str, Any]]:
        self.state.resume()
        log.warning("resume requested by %s", req.client)
        return 200, {"state": self.state.mode}


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), default=str).encode("utf-8")


def _encode_cursor(updated_at: str, po_number: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, po_number]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    if not cursor:
        return None
    try:
        updated_at, po_number = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(updated_at), str(po_number)
    except (ValueError, TypeError):
        raise AgentError("VALIDATION_ERROR", "bad cursor", field="cursor") from None
