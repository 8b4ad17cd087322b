"""One error tree for every system the connector talks to.

    ConnectorError
    ├── RetryableError            (the task reschedules; `retry_after` seconds if known)
    │   ├── RateLimited           429
    │   ├── Unavailable           5xx, connection failures
    │   ├── Timeout               no answer in time
    │   │   └── DeadlineExceeded  the attempt's total deadline passed (base/deadline.py)
    │   ├── Locked                a record lock (Sage 423, Acumatica "locked by another user")
    │   └── SeatsExhausted        Acumatica "API Login Limit": no API seat free right now
    └── PermanentError            (written to the audit trail; retrying cannot help)
        ├── AuthFailed            401 after one re-authentication
        ├── Forbidden             403
        ├── NotFound              404 (and Acumatica's 500 NoEntitySatisfiesTheConditionException)
        ├── Conflict              409 / 412
        ├── Invalid               400 / 422, with the vendor's field errors
        └── UnexpectedResponse    a body we cannot parse where JSON was promised

`ConfigurationError` stands outside the tree on purpose: a missing credential or a bad URL must
never be swallowed by a handler that catches ConnectorError and retries.

`outcome_unknown` is True when a non-idempotent request may have been applied although no answer
arrived (timeout or 5xx after sending a POST): the caller must reconcile by natural key before
trying again; it never retries blindly.
"""

from __future__ import annotations

import json
import re
from typing import Any

EXCERPT_CHARS = 500
_TAG_RE = re.compile(r"<[^>]+>")
_WS_RE = re.compile(r"\s+")


class ConfigurationError(Exception):
    """The connector is configured wrongly (missing credential, bad URL…).

    Not retryable and not a vendor error."""


class ConnectorError(Exception):
    retryable = False

    def __init__(
        self,
        message: str = "",
        *,
        system: str = "",
        status: int | None = None,
        body_excerpt: str = "",
        retry_after: float | None = None,
        field_errors: dict[str, str] | None = None,
        outcome_unknown: bool = False,
        vendor_code: str = "",
    ) -> None:
        from .redaction import redact_text

        message = redact_text(message or "")
        super().__init__(message)
        self.message = message
        self.system = system
        self.status = status
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after
        self.field_errors = field_errors or {}
        self.outcome_unknown = outcome_unknown
        self.vendor_code = vendor_code

    def __str__(self) -> str:
        parts = [f"[{self.system or 'connector'}]"]
        if self.status is not None:
            parts.append(str(self.status))
        parts.append(type(self).__name__ + ":")
        parts.append(self.message or "(no message)")
        if self.field_errors:
            parts.append("— " + "; ".join(f"{k}: {v}" for k, v in self.field_errors.items()))
        if self.body_excerpt and self.body_excerpt not in (self.message or ""):
            parts.append(f"(body: {self.body_excerpt[:200]})")
        if self.outcome_unknown:
            parts.append("[outcome unknown: reconcile before retrying]")
        return " ".join(parts)

    @classmethod
    def from_response(
        cls,
        system: str,
        response: Any,
        *,
        message: str | None = None,
        field_errors: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> ConnectorError:
        """Pick the error class for an HTTP response by its status code."""
        status = response.status_code
        excerpt = body_excerpt(response)
        if message is None:
            message = default_message(response) or (response.reason or f"HTTP {status}")
        klass: type[ConnectorError]
        if status == 429:
            klass = RateLimited
        elif status == 423:
            klass = Locked
        elif status in (408,):
            klass = Timeout
        elif status >= 500:
            klass = Unavailable
        elif status == 401:
            klass = AuthFailed
        elif status == 403:
            klass = Forbidden
        elif status in (404, 410):
            klass = NotFound
        elif status in (409, 412):
            klass = Conflict
        elif status in (400, 422):
            klass = Invalid
        else:
            klass = PermanentError
        return klass(
            message,
            system=system,
            status=status,
            body_excerpt=excerpt,
            retry_after=retry_after,
            field_errors=field_errors,
        )


class RetryableError(ConnectorError):
    retryable = True


class RateLimited(RetryableError):
    pass


class Unavailable(RetryableError):
    pass


class Timeout(RetryableError):
    pass


class DeadlineExceeded(Timeout):
    """The attempt's deadline (base/deadline.py) passed inside the HTTP base. `sent` says whether the
    request had reached the vendor; `outcome_unknown` is set only when it may have been applied."""

    def __init__(self, message: str = "", *, sent: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = sent


class Locked(RetryableError):
    pass


class SeatsExhausted(RetryableError):
    pass


class PermanentError(ConnectorError):
    pass


class AuthFailed(PermanentError):
    pass


class Forbidden(PermanentError):
    pass


class NotFound(PermanentError):
    pass


class Conflict(PermanentError):
    pass


class Invalid(PermanentError):
    pass


class UnexpectedResponse(PermanentError):
    pass


def body_excerpt(response: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, readable excerpt of a response body: HTML tags stripped, whitespace folded."""
    try:
        text = response.content.decode(response.encoding or "utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - an excerpt must never raise
        return ""
    ctype = (response.headers.get("Content-Type") or "").lower()
    if "html" in ctype or text.lstrip()[:1] == "<":
        text = _TAG_RE.sub(" ", text)
    text = _WS_RE.sub(" ", text).strip()
    from .redaction import redact_text

    return redact_text(text[:limit])


def default_message(response: Any) -> str:
    """The vendor's own message from common JSON error shapes, else ''."""
    try:
        data = json.loads(response.content or b"")
    except (ValueError, TypeError):
        return ""
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or "")
        for key in ("exceptionMessage", "message", "error_description", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict) and value.get("message"):
                return str(value["message"])
    return ""
