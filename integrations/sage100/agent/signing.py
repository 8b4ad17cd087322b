"""Request signing for the Sage 100 agent — shared by the agent and the connector-side client.

Dependency-free on purpose (standard library only): the connector imports this module to sign its
requests and the agent imports it to verify them, so both sides compute the same canonical string.

Scheme (docs/sage100-agent.md §3, reference sage100.md §9):

* ``Authorization: Bearer <api_key>`` identifies the caller. The API key travels on the wire (inside
  TLS); the HMAC secret never does.
* ``X-Timestamp: <unix seconds>`` — the agent refuses timestamps more than ``max_skew`` seconds
  (default 300) away from its own clock.
* ``X-Content-SHA256: <hex sha256 of the raw body>`` — informative; the agent recomputes it.
* ``X-Signature: v1=<hex HMAC-SHA256(secret, canonical)>`` where ``canonical`` is::

      METHOD \\n PATH?QUERY \\n TIMESTAMP \\n hex(sha256(body))

  ``PATH?QUERY`` is the request target exactly as sent on the request line (no scheme/host), e.g.
  ``/v1/purchase-orders?updated_since=2025-03-01T00%3A00%3A00Z``. An empty body hashes as ``b""``.

Every comparison on the verifying side is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_VERSION = "v1"
DEFAULT_MAX_SKEW = 300

HEADER_AUTHORIZATION = "Authorization"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_CONTENT_SHA256 = "X-Content-SHA256"
HEADER_SIGNATURE = "X-Signature"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"


class SignatureError(Exception):
    """The request's credentials or signature are missing, malformed, stale or wrong.

    ``reason`` is a short machine-readable word (``missing``, ``unknown_key``, ``skew``, ``body_hash``,
    ``signature``) for logs; callers must not echo it in detail to the client.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def body_sha256(body: bytes | None) -> str:
    """Hex SHA-256 of the raw request body (``b""`` when there is none)."""
    return hashlib.sha256(body or b"").hexdigest()


def canonical_string(method: str, path: str, timestamp: int | str, body_hash: str) -> bytes:
    """The exact bytes that are signed: ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nSHA256HEX``."""
    return f"{method.upper()}\n{path}\n{timestamp}\n{body_hash}".encode()


def compute_signature(
    secret: str | bytes, method: str, path: str, timestamp: int | str, body: bytes | None
) -> str:
    """Return ``v1=<hex>`` for the given request parts."""
    mac = hmac.new(
        _to_bytes(secret), canonical_string(method, path, timestamp, body_sha256(body)), hashlib.sha256
    )
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def sign_request(
    api_key: str | None,
    secret: str | bytes,
    method: str,
    path: str,
    timestamp: int | None = None,
    body: bytes | None = b"",
) -> dict[str, str]:
    """Headers that authenticate one request to the agent.

    ``api_key`` — the caller's API key (sent as ``Authorization: Bearer``); ``None`` omits the header.
    ``secret`` — the HMAC secret paired with that key. ``path`` — request target with its query string,
    exactly as it will be sent. ``timestamp`` — unix seconds; ``None`` means now. ``body`` — the exact
    bytes that will be sent. Add ``Idempotency-Key`` yourself on mutating calls.
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    headers = {
        HEADER_TIMESTAMP: str(ts),
        HEADER_CONTENT_SHA256: body_sha256(body),
        HEADER_SIGNATURE: compute_signature(secret, method, path, ts, body),
    }
    if api_key is not None:
        headers[HEADER_AUTHORIZATION] = f"Bearer {api_key}"
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def verify_request(
    keys: Mapping[str, str | bytes],
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    now: float | None = None,
    max_skew: int = DEFAULT_MAX_SKEW,
) -> str:
    """Check one request; return the matched API key, or raise :class:`SignatureError`.

    ``keys`` maps each accepted API key to its HMAC secret (several entries allow key rotation).
    The API key is matched with a constant-time comparison against every configured key.
    """
    auth = _header(headers, HEADER_AUTHORIZATION) or ""
    ts_raw = _header(headers, HEADER_TIMESTAMP)
    sig = _header(headers, HEADER_SIGNATURE)
    if not auth.startswith("Bearer ") or not ts_raw or not sig:
        raise SignatureError("missing", "Authorization, X-Timestamp and X-Signature headers are required")
    presented = _to_bytes(auth[len("Bearer ") :].strip())
    matched: str | None = None
    for api_key in keys:
        # Compare against every key (no early exit) so timing does not reveal which prefix matched.
        if hmac.compare_digest(presented, api_key.encode("utf-8")):
            matched = api_key
    if matched is None:
        raise SignatureError("unknown_key", "unknown API key")
    ts_text = ts_raw.strip()
    if not (ts_text.isascii() and ts_text.isdigit() and len(ts_text) <= 12):
        # Unix seconds only: no sign, no exponent, no 400-digit number (float overflow).
        raise SignatureError("missing", "X-Timestamp must be unix seconds")
    ts = int(ts_text)
    current = time.time() if now is None else now
    if abs(current - ts) > max_skew:
        raise SignatureError("skew", f"X-Timestamp is more than {max_skew} s away from the agent's clock")
    declared_hash = _header(headers, HEADER_CONTENT_SHA256)
    # Header values are arbitrary text (non-ASCII included): compare bytes, never str, so a stray
    # character is a mismatch rather than compare_digest's TypeError.
    if declared_hash is not None and not hmac.compare_digest(
        _to_bytes(declared_hash.strip().lower()), body_sha256(body).encode()
    ):
        raise SignatureError("body_hash", "body does not match X-Content-SHA256")
    expected = compute_signature(keys[matched], method, path, ts, body)
    if not hmac.compare_digest(_to_bytes(sig.strip()), expected.encode("utf-8")):
        raise SignatureError("signature", "signature mismatch")
    return matched
