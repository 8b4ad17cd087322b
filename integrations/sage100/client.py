"""Sage 100 agent client: the connector's side of the contract in docs/sage100-agent.md.

One small method per agent endpoint on top of HttpClient. What is special here:

- **Signing** (agent doc §3): every request carries `Authorization: Bearer`, `X-Timestamp`, `X-Nonce`,
  `X-Content-SHA256` and `X-Signature` (v2) over method, path?query, timestamp, nonce, sha256(body) and
  the `Idempotency-Key`. It is done in a `requests` auth hook (`AgentSignature`), which runs after
  requests has built the final URL, body and headers, so the signature covers exactly the bytes, the
  request target and the key that go on the wire; the hook runs again for every retry, so each attempt
  carries a fresh timestamp and nonce (the agent accepts a nonce once).
- **TLS** (agent doc §6, §8.6): the agent usually has a self-signed certificate. Two ways to trust it:
  `ca_certificate` (PEM of the CA, or the self-signed certificate itself) becomes a CA bundle file
  under VAR_DIR; `tls_fingerprint_sha256` pins the certificate through urllib3's `assert_fingerprint`
  on the pool manager. In pinned mode without a CA, chain verification is off and the pin alone
  decides (urllib3 then counts the connection as verified); with both, both are checked.
- **Retries**: POST is retried on 423 (record locked), 429 and 503 (busy / paused for maintenance).
  That is safe ONLY because every create carries an `Idempotency-Key` and the agent answers those
  statuses before writing anything (it releases the key: agent doc §4, §5). A 504 or a lost answer
  is an unknown outcome: the caller looks the PO up by external id before anything else (§10).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from integrations.base import errors
from integrations.base.http import HttpClient, paginate
from sage100_agent.signing import HEADER_IDEMPOTENCY_KEY, sign_request

log = logging.getLogger(__name__)

CREATE_READ_TIMEOUT = 120.0  # a BOI write may queue behind the company's single writer (agent §7)


class DuplicateExternalId(errors.Conflict):
    """409 DUPLICATE_EXTERNAL_ID: a PO already carries this Asana task GID; `po_number` names it."""

    po_number: str = ""


class AgentMisconfigured(errors.PermanentError):
    """502 SAGE_LOGIN_FAILED: the agent cannot log in to Sage (configuration problem; alert)."""


class AgentSignature(requests.auth.AuthBase):
    """Signs the prepared request: final body bytes and request target (path?query) as sent."""

    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret

    def __call__(self, prepared: requests.PreparedRequest) -> requests.PreparedRequest:
        body = prepared.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        parts = urlsplit(prepared.url or "")
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        idempotency_key = prepared.headers.get(HEADER_IDEMPOTENCY_KEY)
        prepared.headers.update(
            sign_request(
                self.api_key,
                self.secret,
                prepared.method or "GET",
                target,
                None,
                body,
                idempotency_key=idempotency_key.strip() if idempotency_key else None,
            )
        )
        return prepared


class PinnedFingerprintAdapter(HTTPAdapter):
    """Accepts only a peer certificate whose SHA-256 fingerprint equals the pin (urllib3 checks it)."""

    def __init__(self, fingerprint: str, **kwargs: Any) -> None:
        self.fingerprint = normalise_fingerprint(fingerprint)
        super().__init__(**kwargs)

    def init_poolmanager(self, connections, maxsize, block=False, **pool_kwargs):  # noqa: ANN001
        pool_kwargs["assert_fingerprint"] = self.fingerprint
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)


def normalise_fingerprint(value: str) -> str:
    """`AB:CD:…` or `abcd…` → lower-case hex with colons removed (urllib3 accepts either)."""
    text = value.replace(":", "").replace(" ", "").strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise errors.ConfigurationError(
            "tls_fingerprint_sha256 must be a SHA-256 fingerprint (64 hex digits)"
        )
    return text


def ca_bundle_file(pem: str) -> str:
    """The CA PEM written once to VAR_DIR/sage100/ca-<hash>.pem (requests needs a file path)."""
    data = pem.strip().encode() + b"\n"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise errors.ConfigurationError("ca_certificate must be a PEM certificate")
    folder = Path(settings.VAR_DIR) / "sage100"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ca-{hashlib.sha256(data).hexdigest()[:16]}.pem"
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return str(path)


@dataclass
class Sage100Client(HttpClient):
    private_network_allowed: ClassVar[bool] = True  # the agent lives on the customer's LAN
    api_key: str = ""
    signing_secret: str = ""
    company_code: str = ""
    default_division: str = "00"
    tls_fingerprint_sha256: str = ""
    ca_certificate: str = ""

    system = "sage100"
    # Every POST carries an Idempotency-Key, and the agent answers 423/429/503 before writing and
    # releases the key (agent doc §4): retrying a create on those is safe. Never on 5xx otherwise.
    retry_non_idempotent_on = frozenset({423, 429, 503})
    retry_statuses = frozenset({423, 429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.api_key or not self.signing_secret:
            raise errors.ConfigurationError("the Sage 100 connection needs an API key and a signing secret")
        self.register_secrets(self.api_key, self.signing_secret)
        self.session.auth = AgentSignature(self.api_key, self.signing_secret)
        # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment override
        # session.verify (psf/requests#3829), which would silently replace our CA or pin with the
        # system bundle. The agent is reached directly on the customer's LAN: ignore the environment.
        self.session.trust_env = False
        self.session.verify = ca_bundle_file(self.ca_certificate) if self.ca_certificate else True
        if self.tls_fingerprint_sha256:
            if not self.ca_certificate:
                self.session.verify = False  # the pin replaces the chain (self-signed agent cert)
            self.session.mount("https://", PinnedFingerprintAdapter(self.tls_fingerprint_sha256))

    # ---- errors: the agent's envelope {"error": {code, message, retryable, step, field, …}} ----------
    @staticmethod
    def _envelope(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {}
        error = body.get("error") if isinstance(body, dict) else None
        return error if isinstance(error, dict) else {}

    def parse_error(self, response: requests.Response) -> tuple[str | None, dict[str, str]]:
        env = self._envelope(response)
        if not env:
            return errors.default_message(response) or None, {}
        message = f"{env.get('code', '')}: {env.get('message', '')}".strip(": ")
        if env.get("step"):
            message += f" (at {env['step']})"
        if env.get("sage_message"):
            message += f" — Sage said: {env['sage_message']}"
        field_errors = {str(env["field"]): str(env.get("message", ""))} if env.get("field") else {}
        return message, field_errors

    def classify_error(
        self, response: requests.Response, error: errors.ConnectorError
    ) -> errors.ConnectorError:
        env = self._envelope(response)
        code = str(env.get("code") or "")
        error.vendor_code = code
        error.agent_error = env  # type: ignore[attr-defined] - the raw envelope, for the audit trail
        kwargs = {
            "system": self.system,
            "status": error.status,
            "body_excerpt": error.body_excerpt,
            "retry_after": error.retry_after,
            "field_errors": error.field_errors,
            "vendor_code": code,
        }
        if code == "DUPLICATE_EXTERNAL_ID":
            dup = DuplicateExternalId(error.message, **kwargs)
            dup.po_number = str(env.get("po_number") or "")
            return dup
        if code == "IDEMPOTENCY_IN_FLIGHT":  # another worker's call with our key is still running
            return errors.Locked(error.message, **{**kwargs, "retry_after": error.retry_after or 2})
        if code == "SAGE_LOGIN_FAILED":
            return AgentMisconfigured(error.message, **kwargs)
        if env and env.get("retryable") is False and error.retryable:
            return errors.PermanentError(error.message, **kwargs)
        return error

    # ---- endpoints (docs/sage100-agent.md §2) --------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.json(self.request("GET", path, params=params))

    def ping(self) -> dict[str, Any]:
        """GET /v1/ping — company, backend, agent_version, paused, server_time…"""
        return self._get("/v1/ping")

    def selftest(self) -> dict[str, Any]:
        """GET /v1/selftest — every BOI object, method and column the agent uses, checked without writing
        (agent doc §7): ``{ok, backend, company, checks, problems, table}``. Needs the ``selftest`` scope."""
        return self._get("/v1/selftest")

    def search_vendors(
        self, q: str = "", *, division: str | None = None, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """GET /v1/vendors?q=&division=&cursor=&limit= — a generator over every page."""

        def page(cursor: str | None):
            params = {"q": q, "limit": page_size, **({"division": division} if division else {})}
            data = self._get("/v1/vendors", {**params, **({"cursor": cursor} if cursor else {})})
            return data.get("items") or [], data.get("next_cursor")

        return paginate(page)

    def get_vendor(self, division: str, vendor_no: str) -> dict[str, Any]:
        """GET /v1/vendors/{division}-{vendor_no} — the agent normalises the number (ref §3)."""
        return self._get(f"/v1/vendors/{quote(f'{division}-{vendor_no}', safe='')}")

    def list_gl_accounts(
        self, q: str = "", *, status: str | None = "A", page_size: int = 500
    ) -> Iterator[dict[str, Any]]:
        """GET /v1/gl-accounts?q=&status=&cursor=&limit=."""

        def page(cursor: str | None):
            params = {"q": q, "limit": page_size, **({"status": status} if status else {})}
            data = self._get("/v1/gl-accounts", {**params, **({"cursor": cursor} if cursor else {})})
            return data.get("items") or [], data.get("next_cursor")

        return paginate(page)

    def get_gl_account(self, account: str) -> dict[str, Any]:
        """GET /v1/gl-accounts/{formatted account or AccountKey}."""
        return self._get(f"/v1/gl-accounts/{quote(account, safe='')}")

    def create_purchase_order(
        self, payload: dict[str, Any], idempotency_key: str, *, dry_run: bool = False
    ) -> dict[str, Any]:
        """POST /v1/purchase-orders (201; a replay with the same key answers the original body).

        Raises DuplicateExternalId (409, with po_number), Invalid (400/422), Locked/Unavailable after the
        inline retries (with retry_after), or an error with outcome_unknown (504, lost answer): then
        call `find_po_by_external_id` before anything else.
        """
        headers = {} if dry_run else {HEADER_IDEMPOTENCY_KEY: idempotency_key}
        response = self.request(
            "POST",
            "/v1/purchase-orders",
            params={"dry_run": "true"} if dry_run else None,
            json_body=payload,
            headers=headers,
            timeout=(self.connect_timeout, max(self.read_timeout or 0, CREATE_READ_TIMEOUT)),
        )
        data = self.json(response) or {}
        data["idempotent_replay"] = response.headers.get("Idempotent-Replay") == "true"
        return data

    def get_purchase_order(self, po_number: str) -> dict[str, Any]:
        """GET /v1/purchase-orders/{po} — NotFound means deleted or purged (ref §2.4)."""
        return self._get(f"/v1/purchase-orders/{quote(po_number, safe='')}")

    def find_po_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        """GET /v1/purchase-orders?external_id= — the PO carrying this Asana GID, or None."""
        try:
            return self._get("/v1/purchase-orders", {"external_id": external_id})
        except errors.NotFound:
            return None

    def iter_changed_pos(
        self,
        since: datetime,
        *,
        overlap_seconds: int = 300,
        include_lines: bool = False,
        page_size: int = 200,
    ) -> Iterator[dict[str, Any]]:
        """GET /v1/purchase-orders?updated_since=&overlap_seconds= — POs changed since a UTC instant,
        sorted by (updated_at, po_number); the agent converts DateUpdated + decimal-hours TimeUpdated
        from the Sage server's zone to UTC (agent doc §2.2)."""
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        def page(cursor: str | None):
            params: dict[str, Any] = {
                "updated_since": stamp,
                "overlap_seconds": overlap_seconds,
                "limit": page_size,
            }
            if include_lines:
                params["include"] = "lines"
            if cursor:
                params["cursor"] = cursor
            data = self._get("/v1/purchase-orders", params)
            return data.get("items") or [], data.get("next_cursor")

        return paginate(page)


def client_for(connection: Any, **overrides: Any) -> Sage100Client:
    """The client for a Sage100Connection (secrets decrypted by the model's fields)."""
    return Sage100Client(
        base_url=connection.agent_url,
        tenant_id=connection.tenant_id,
        api_key=connection.api_key,
        signing_secret=connection.signing_secret,
        company_code=connection.company_code,
        default_division=connection.default_ap_division or "00",
        tls_fingerprint_sha256=connection.tls_fingerprint_sha256,
        ca_certificate=connection.ca_certificate,
        **overrides,
    )
