"""Redaction of secrets from everything the connector logs or stores.

Three layers: known secret *values* (every client registers the credentials it holds, so a token
echoed back in an error body is still caught), sensitive *names* (headers, query parameters, JSON
and form keys), and *patterns* (Bearer tokens, cookies) for text we know nothing about.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "[redacted]"
SENSITIVE_NAME_RE = re.compile(
    r"(pass(word)?|secret|token|authorization|cookie|api[-_]?key|signature|hook[-_]secret|"
    r"client_assertion|^code$|^sig$|^key$)",
    re.IGNORECASE,
)
_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + REDACTED),
    (
        re.compile(
            r"(?i)((?:password|secret|token|api_key|refresh_token|access_token)\"?\s*[:=]\s*\"?)"
            r"[^\"&\s,}]+"
        ),
        r"\1" + REDACTED,
    ),
    (
        re.compile(r"(?i)(\.ASPXAUTH|ASP\.NET_SessionId|Set-Cookie|Cookie)(\s*[:=]\s*)[^;\s,]+"),
        r"\1\2" + REDACTED,
    ),
]

# Every pattern above needs one of these words (case aside): text without any of them is left as is
# after one search instead of three substitutions (most stored text: names, amounts, references).
_PATTERN_WORDS = re.compile(
    r"(?i)bearer|basic|password|secret|token|api_key|aspxauth|asp\.net_sessionid|cookie"
)

_known_secrets: set[str] = set()
_secrets_longest_first: tuple[str, ...] = ()
_lock = threading.Lock()
MIN_SECRET_LENGTH = 6


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it appears."""
    global _secrets_longest_first
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _lock:
            if value not in _known_secrets:
                _known_secrets.add(value)
                _secrets_longest_first = tuple(sorted(_known_secrets, key=len, reverse=True))


def known_secrets() -> frozenset[str]:
    return frozenset(_known_secrets)


def keep_only_secrets(keep: frozenset[str]) -> None:
    """Forget every registered secret not in `keep` (tests: each starts from the same set)."""
    global _secrets_longest_first
    with _lock:
        _known_secrets.intersection_update(keep)
        _secrets_longest_first = tuple(sorted(_known_secrets, key=len, reverse=True))


@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    return bool(SENSITIVE_NAME_RE.search(name or ""))


def redact_text(text: str) -> str:
    if not text:
        return text
    for secret in _secrets_longest_first:  # a tuple replaced whole: safe to read without the lock
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _PATTERN_WORDS.search(text):
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
    return text


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    query = [
        (k, REDACTED if is_sensitive_name(k) else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="$'(),:/ "), "")))


def redact_headers(headers: Any, extra_sensitive: tuple[str, ...] = ()) -> dict[str, str]:
    extra = {h.lower() for h in extra_sensitive}
    out = {}
    for name, value in dict(headers or {}).items():
        if is_sensitive_name(name) or name.lower() in extra:
            out[name] = REDACTED
        else:
            out[name] = redact_text(str(value))
    return out


def redact_data(data: Any) -> Any:
    """Deep copy of JSON-like data with sensitive keys and known secret values masked."""
    if isinstance(data, dict):
        return {
            k: (REDACTED if is_sensitive_name(str(k)) and v not in (None, "") else redact_data(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact_data(v) for v in data]
    if isinstance(data, str):
        return redact_text(data)
    return data


def redact_body(body: Any, limit: int = 2000) -> str:
    """A redacted, truncated text excerpt of a request or response body (JSON, form or text).

    `body` may also be form fields as a dict or (name, value) pairs, as `requests` takes them: those
    are redacted field by field, never through their repr() (where a value containing & or = would
    be mistaken for more form fields and re-encoded past the known-secret masking)."""
    if not body:
        return ""
    if isinstance(body, dict | list | tuple):
        pairs = body.items() if isinstance(body, dict) else body
        try:
            fields = {str(k): v for k, v in pairs}
        except (TypeError, ValueError):
            fields = {"body": list(body)}
        return json.dumps(redact_data(fields), ensure_ascii=False, default=str)[:limit]
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        if "=" in text and "&" in text or text.count("=") == 1 and " " not in text:
            pairs = parse_qsl(text, keep_blank_values=True)
            if pairs:
                text = urlencode(
                    [(k, REDACTED if is_sensitive_name(k) else redact_text(v)) for k, v in pairs]
                )
        return redact_text(text)[:limit]
    return json.dumps(redact_data(data), ensure_ascii=False)[:limit]


class RedactingFilter(logging.Filter):
    """Logging filter: masks secrets in every formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001
            return True
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True
