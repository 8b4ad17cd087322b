"""Request signing for the Sage 100 agent — shared by the agent and the connector-side client.

Dependency-free on purpose (standard library only): the connector imports this module to sign its
requests and the agent imports it to verify them, so both sides compute the same canonical string.

Scheme ``v2`` (docs/sage100-agent.md §3; issue 18 "requests that cannot be replayed or widened"):

* ``Authorization: Bearer <api_key>`` identifies the caller. The API key travels on the wire (inside
  TLS); the HMAC secret never does.
* ``X-Timestamp: <unix seconds>`` — the agent refuses timestamps more than ``max_skew`` seconds
  (default 60) away from its own clock.
* ``X-Nonce: <16-128 characters of [A-Za-z0-9_-]>`` — fresh for every request (and every retry). The
  agent remembers each nonce for the skew window (persisted, see ``nonces.py``) and refuses a second use,
  so a captured request cannot be sent again, even inside the window.
* ``X-Content-SHA256: <hex sha256 of the raw body>`` — informative; the agent recomputes it.
* ``X-Signature: v2=<hex HMAC-SHA256(secret, canonical)>`` where ``canonical`` is::

      v2 \n METHOD \n PATH?QUERY \n TIMESTAMP \n NONCE \n hex(sha256(body)) \n IDEMPOTENCY-KEY

  ``PATH?QUERY`` is the request target exactly as sent on the request line (no scheme/host), e.g.
  ``/v1/purchase-orders?updated_since=2025-03-01T00%3A00%3A00Z``. An empty body hashes as ``b""``; a
  request without an ``Idempotency-Key`` signs the empty string there. Signing the key means a captured
  create cannot be re-sent under another key (which would bypass the idempotency ledger's replay).

``v1`` signatures (no nonce, no idempotency key) are refused: accepting them would reopen the replay.
Every comparison on the verifying side is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping

SIGNATURE_VERSION = "v2"
DEFAULT_MAX_SKEW = 60

HEADER_AUTHORIZATION = "Authorization"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_CONTENT_SHA256 = "X-Content-SHA256"
HEADER_SIGNATURE = "X-Signature"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"

_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


class SignatureError(Exception):
    """The request's credentials or signature are missing, malformed, stale, replayed or wrong.

    ``reason`` is a short machine-readable word (``missing``, ``unknown_key``, ``skew``, ``nonce``,
    ``replay``, ``body_hash``, ``signature``) for logs; callers must not echo it in detail to the client.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _to_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value


def body_sha256(body: bytes | None) -> str:
    """Hex SHA-256 of the raw request body (``b""`` when there is none)."""
    return hashlib.sha256(body or b"").hexdigest()


def new_nonce() -> str:
    """128 random bits, URL-safe (22 characters)."""
    return secrets.token_urlsafe(16)


def canonical_string(
    method: str, path: str, timestamp: int | str, nonce: str, body_hash: str, idempotency_key: str = ""
) -> bytes:
    """The exact bytes that are signed (see the module docstring)."""
    parts = (SIGNATURE_VERSION, method.upper(), path, str(timestamp), nonce, body_hash, idempotency_key)
    return "\n".join(parts).encode("utf-8", "surrogatepass")


def compute_signature(
    secret: str | bytes,
    method: str,
    path: str,
    timestamp: int | str,
    body: bytes | None,
    nonce: str,
    idempotency_key: str = "",
) -> str:
    """Return ``v2=<hex>`` for the given request parts."""
    canonical = canonical_string(method, path, timestamp, nonce, body_sha256(body), idempotency_key)
    mac = hmac.new(_to_bytes(secret), canonical, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def sign_request(
    api_key: str | None,
    secret: str | bytes,
    method: str,
    path: str,
    timestamp: int | None = None,
    body: bytes | None = b"",
    *,
    idempotency_key: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that authenticate one request to the agent.

    ``api_key`` — the caller's API key (sent as ``Authorization: Bearer``); ``None`` omits the header.
    ``secret`` — the HMAC secret paired with that key. ``path`` — request target with its query string,
    exactly as it will be sent. ``timestamp`` — unix seconds; ``None`` means now. ``body`` — the exact
    bytes that will be sent. ``idempotency_key`` — signed, and returned as the ``Idempotency-Key``
    header. ``nonce`` — ``None`` draws a fresh one (pass one only to test the replay refusal).
    """
    ts = int(time.time()) if timestamp is None else int(timestamp)
    nonce = nonce or new_nonce()
    headers = {
        HEADER_TIMESTAMP: str(ts),
        HEADER_NONCE: nonce,
        HEADER_CONTENT_SHA256: body_sha256(body),
        HEADER_SIGNATURE: compute_signature(
            secret, method, path, ts, body, nonce, (idempotency_key or "").strip()
        ),
    }
    if idempotency_key is not None:
        headers[HEADER_IDEMPOTENCY_KEY] = idempotency_key
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
    remember_nonce: Callable[[str, str, int], bool] | None = None,
) -> str:
    """Check one request; return the matched API key, or raise :class:`SignatureError`.

    ``keys`` maps each accepted API key to its HMAC secret (several entries allow key rotation).
    The API key is matched with a constant-time comparison against every configured key.
    ``remember_nonce(api_key, nonce, timestamp)`` is called only once the signature is proven (so
    nobody can fill the store without the secret); it returns False when the nonce was already used.
    """
    auth = _header(headers, HEADER_AUTHORIZATION) or ""
    ts_raw = _header(headers, HEADER_TIMESTAMP)
    sig = _header(headers, HEADER_SIGNATURE)
    nonce = (_header(headers, HEADER_NONCE) or "").strip()
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
    if not _NONCE.match(nonce):
        raise SignatureError("nonce", "X-Nonce (16-128 characters of A-Z a-z 0-9 _ -) is required")
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
    idempotency_key = _header(headers, HEADER_IDEMPOTENCY_KEY) or ""
    expected = compute_signature(keys[matched], method, path, ts, body, nonce, idempotency_key.strip())
    if not hmac.compare_digest(_to_bytes(sig.strip()), expected.encode("utf-8")):
        raise SignatureError("signature", "signature mismatch")
    # The store keeps the nonce as long as its timestamp is acceptable (until ts + max_skew).
    if remember_nonce is not None and not remember_nonce(matched, nonce, ts):
        raise SignatureError("replay", "this request was already accepted once (nonce reused)")
    return matched
