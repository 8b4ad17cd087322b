"""The one HTTP client every vendor client builds on.

Extension contract for a vendor client (see integrations/acumatica/client.py, asana/client.py):
- set `system` (used in errors, ApiCall rows and logs);
- override `apply_auth(headers)` to add credentials, and `reauthenticate()` to refresh them after a
  401 (return True if a retry may succeed; the base retries once);
- override `parse_error(response)` to pull the vendor's message and field errors out of a body;
- override `classify_error(response, error)` to turn vendor-specific bodies into a better error
  class (e.g. Acumatica's 500 "NoEntitySatisfiesTheConditionException" → NotFound);
- add one small method per endpoint, with a comment linking the vendor's documentation.

What the base does for everyone: a `requests.Session` per connection, explicit connect/read
timeouts, a User-Agent, retries with bounded exponential backoff and jitter, `Retry-After`
honoured, idempotent methods only retried after 5xx or lost connections (POST never blindly), a
short wait sleeps while a long one raises a RetryableError carrying the delay so the task can
reschedule, every attempt recorded as an ApiCall with secrets redacted, and an optional shared
rate limiter consulted before each attempt.

The retry loop is our own rather than urllib3's adapter-level Retry because each attempt must be
recorded and a long wait must leave the worker; urllib3's Retry is still used to parse
`Retry-After` (seconds or HTTP date) and to define which methods are idempotent.

The attempt deadline (base/deadline.py), the contract flows rely on:
- `with attempt_deadline(seconds):` around one attempt of a flow (e.g. 0.75 × its claim's lease)
  bounds every wait of every request inside it: the budget's pace and in-flight slots, the sleeps
  between retries, and the connect and read timeouts themselves (each is cut to the time left; a
  read timeout bounds each read of the socket, so an answer already arriving may end a moment late);
- when the time left cannot cover the next wait or request, `request` raises
  `errors.DeadlineExceeded` (a retryable Timeout) saying which request, whether it was sent, and
  `outcome_unknown=True` only if a non-idempotent request may have been applied (sent, no answer);
- without a deadline the budget waits of one request total at most HTTP_MAX_BUDGET_WAIT, then
  RateLimited with the next wait as `retry_after`;
- a non-idempotent request (POST) is retried only when it cannot have been applied: a connection
  that was never made (refused, DNS, connect timeout) or an answer that says nothing was done (429,
  `retry_non_idempotent_on`). A read timeout or a dropped connection after sending is never retried:
  the error carries `outcome_unknown` and the caller reconciles by identity.

`requests` is configured once per session (`configure_session`): the proxy and CA-bundle environment
is read once per process, and a session only re-reads it per call (requests' `trust_env`) when a
proxy is configured, where NO_PROXY must be matched per URL.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol
from urllib.parse import urljoin

import requests
from django.conf import settings
from urllib3.util import Retry

from . import errors
from .deadline import remaining
from .outbound import GuardedAdapter, OutboundAddressRefused, check_url
from .redaction import redact_body, redact_text, redact_url, register_secret
from .session import configure_session, never_connected

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset(Retry.DEFAULT_ALLOWED_METHODS)  # GET, HEAD, PUT, DELETE, OPTIONS, TRACE
USER_AGENT = "ml-connector/0.1 (+https://github.com/ml-connector)"
BACKOFF_BASE = 0.5
BACKOFF_CAP = 60.0
# Below this much time left an attempt does not start a request: it could only end in a timeout.
MIN_REQUEST_TIME = 0.05


@dataclass
class CallRecord:
    system: str
    method: str
    url: str
    started_at: datetime
    duration_ms: int
    attempt: int
    status_code: int | None = None
    error: str = ""
    request_excerpt: str = ""
    response_excerpt: str = ""
    tenant_id: int | None = None


class RateLimiter(Protocol):
    """A budget shared by every worker using one credential. `acquire` returns seconds to wait (0 = go)."""

    def acquire(self, *, write: bool) -> float: ...

    def release(self, *, write: bool) -> None: ...


def backoff_delay(attempt: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Bounded exponential backoff with full jitter in [d/2, d]."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.5, 1.0)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except Exception:  # noqa: BLE001 - a malformed header means "no hint"
        return None


@dataclass
class HttpClient:
    base_url: str
    tenant_id: int | None = None
    connect_timeout: float | None = None
    read_timeout: float | None = None
    max_retries: int | None = None
    max_inline_wait: float | None = None
    rate_limiter: RateLimiter | None = None
    recorder: Callable[[CallRecord], None] | None = None
    sleep: Callable[[float], None] = time.sleep
    session: requests.Session = field(default_factory=requests.Session)

    # Class-level policy (ClassVar: not dataclass fields, so a vendor subclass's values are never
    # overwritten by the base's defaults at __init__).
    system: ClassVar[str] = "http"
    # Statuses after which even a POST may be retried: the vendor promises nothing was done.
    retry_non_idempotent_on: ClassVar[frozenset[int]] = frozenset({429})
    retry_statuses: ClassVar[frozenset[int]] = frozenset({429, 500, 502, 503, 504})
    sensitive_headers: ClassVar[tuple[str, ...]] = ()
    # Cloud services are reached on public addresses only (base/outbound.py); the Sage 100 agent on the
    # customer's LAN sets this.
    private_network_allowed: ClassVar[bool] = False

    def __post_init__(self) -> None:
        self.connect_timeout = self.connect_timeout or settings.HTTP_CONNECT_TIMEOUT
        self.read_timeout = self.read_timeout or settings.HTTP_READ_TIMEOUT
        self.max_retries = settings.HTTP_MAX_RETRIES if self.max_retries is None else self.max_retries
        if self.max_inline_wait is None:
            self.max_inline_wait = settings.HTTP_MAX_INLINE_WAIT
        configure_session(self.session)
        self.session.headers["User-Agent"] = USER_AGENT
        if not self.private_network_allowed:
            guard = GuardedAdapter()
            self.session.mount("https://", guard)
            self.session.mount("http://", guard)
        if self.recorder is None:
            from audit.recorder import record_api_call

            self.recorder = record_api_call

    # ---- hooks for vendor clients -------------------------------------------------------------
    def apply_auth(self, headers: dict[str, str]) -> None:
        """Add credentials to an outgoing request's headers."""

    def reauthenticate(self) -> bool:
        """Refresh credentials after a 401. True if the request should be retried once."""
        return False

    def parse_error(self, response: requests.Response) -> tuple[str | None, dict[str, str]]:
        """The vendor's message and field errors from an error response."""
        return errors.default_message(response) or None, {}

    def classify_error(
        self, response: requests.Response, error: errors.ConnectorError
    ) -> errors.ConnectorError:
        return error

    def register_secrets(self, *values: str | None) -> None:
        for value in values:
            register_secret(value)

    # ---- the request loop ---------------------------------------------------------------------
    def url_for(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return urljoin(self.base_url.rstrip("/") + "/", path_or_url.lstrip("/"))

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Any = None,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        timeout: tuple[float, float] | None = None,
        authenticated: bool = True,
        stream: bool = False,
    ) -> requests.Response:
        """One request with the retry policy. `data` may be a zero-argument callable returning a fresh
        body for each attempt (a streamed upload cannot be replayed from a spent iterator); `stream`
        leaves the answer's body unread for `iter_content`."""
        method = method.upper()
        url = self.url_for(path_or_url)
        check_url(url, private_network_allowed=self.private_network_allowed)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        body = json.dumps(json_body).encode() if json_body is not None else data
        attempt = 0
        reauthed = False
        reached = False  # an earlier attempt reached the vendor (answered, or retried as safe to repeat)
        while True:
            attempt += 1
            send_headers = {"Accept": "application/json"}
            if json_body is not None:
                send_headers["Content-Type"] = "application/json"
            send_headers.update(headers or {})
            if authenticated:
                self.apply_auth(send_headers)
            self._wait_for_budget(method, url, sent_before=reached)
            try:
                timeouts, cut = self._timeouts(timeout, method, url, sent_before=reached)
            except errors.DeadlineExceeded:
                self._release(method)  # the slot just taken: nothing will be sent
                raise
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            response: requests.Response | None = None
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    data=body() if callable(body) else body,
                    headers=send_headers,
                    timeout=timeouts,
                    allow_redirects=False,
                    stream=stream,
                )
            except OutboundAddressRefused as exc:  # resolved to a private address: nothing was sent
                self._record(method, url, started, t0, attempt, None, body, error=str(exc))
                raise
            except requests.RequestException as exc:
                error = self._transport_error(exc, method, idempotent)
                unsent = never_connected(exc)
                reached = reached or not unsent
                if isinstance(exc, requests.Timeout) and cut[0 if unsent else 1]:
                    error = self._deadline_passed(
                        method,
                        url,
                        sent=not unsent,
                        outcome_unknown=error.outcome_unknown,
                        what="waiting for the connection" if unsent else "waiting for the answer",
                    )
                self._record(method, url, started, t0, attempt, None, body, error=str(error))
                if (
                    error.retryable
                    and not error.outcome_unknown
                    and not isinstance(error, errors.DeadlineExceeded)
                    and attempt <= self.max_retries
                ):
                    self._pause(backoff_delay(attempt), error, method=method, url=url, sent_before=reached)
                    continue
                raise error from exc
            finally:
                self._release(method)
            self._record(method, url, started, t0, attempt, response, body)
            reached = True
            status = response.status_code
            if status < 400 and not (300 <= status < 400 and status != 304):
                return response
            if status == 401 and authenticated and not reauthed and self.reauthenticate():
                reauthed = True
                attempt -= 1
                continue
            error = self._error_for(response)
            # classify_error may turn a 5xx into a permanent error (Acumatica's 500 not-found): no retry
            retry_allowed = idempotent or status in self.retry_non_idempotent_on
            if (
                status in self.retry_statuses
                and error.retryable
                and attempt <= self.max_retries
                and retry_allowed
            ):
                delay = error.retry_after if error.retry_after is not None else backoff_delay(attempt)
                self._pause(delay, error, method=method, url=url, sent_before=True)
                continue
            if not idempotent and status >= 500:
                error.outcome_unknown = True
            raise error

    # ---- waits, all bounded by the attempt deadline (module docstring) ------------------------
    def _release(self, method: str) -> None:
        if self.rate_limiter is not None:
            self.rate_limiter.release(write=method not in ("GET", "HEAD"))

    def _deadline_passed(
        self, method: str, url: str, *, sent: bool, outcome_unknown: bool = False, what: str
    ) -> errors.DeadlineExceeded:
        if sent and outcome_unknown:
            state = "it was sent and may have been applied: reconcile before retrying"
        elif sent:
            state = "it was sent and answered without effect, or is safe to repeat"
        else:
            state = "it was not sent"
        return errors.DeadlineExceeded(
            f"the attempt deadline passed {what} of {method} {redact_url(url)}; {state}",
            system=self.system,
            sent=sent,
            outcome_unknown=sent and outcome_unknown,
        )

    def _timeouts(
        self, timeout: tuple[float, float] | None, method: str, url: str, *, sent_before: bool
    ) -> tuple[tuple[float, float], tuple[bool, bool]]:
        """The (connect, read) timeouts cut to the deadline, and whether the deadline cut each."""
        connect, read = timeout or (self.connect_timeout, self.read_timeout)
        left = remaining()
        if left is None:
            return (connect, read), (False, False)
        if left < MIN_REQUEST_TIME:
            raise self._deadline_passed(method, url, sent=sent_before, what="before sending")
        return (min(connect, left), min(read, left)), (left < connect, left < read)

    def _wait_for_budget(self, method: str, url: str, *, sent_before: bool = False) -> None:
        """Take a slot from the shared budget; `acquire` returns 0 when it took one, else the wait.
        The waits of one request total at most the time left before the deadline, or without one
        HTTP_MAX_BUDGET_WAIT."""
        if self.rate_limiter is None:
            return
        write = method not in ("GET", "HEAD")
        waited = 0.0
        cap = getattr(settings, "HTTP_MAX_BUDGET_WAIT", 60.0)
        while True:
            wait = self.rate_limiter.acquire(write=write)
            if wait <= 0:
                return
            error = errors.RateLimited(
                f"local rate budget exhausted before {method} {redact_url(url)}",
                system=self.system,
                retry_after=wait,
            )
            left = remaining()
            if left is not None and wait + MIN_REQUEST_TIME > left:
                raise self._deadline_passed(
                    method, url, sent=sent_before, what=f"waiting {waited:.1f}s for the rate budget"
                ) from error
            if left is None and waited + wait > cap + 1e-9:
                raise error
            self._pause(wait, error, level=logging.DEBUG)  # pacing, not a fault: no line per request
            waited += wait

    def _pause(
        self,
        delay: float,
        error: errors.ConnectorError,
        *,
        level: int = logging.INFO,
        method: str = "",
        url: str = "",
        sent_before: bool = False,
    ) -> None:
        """Sleep a short delay; a long one leaves the worker as a RetryableError with the delay, and
        one the attempt deadline cannot cover as DeadlineExceeded."""
        if delay > self.max_inline_wait:
            if not isinstance(error, errors.RetryableError):
                raise error
            error.retry_after = delay
            raise error
        left = remaining()
        if left is not None and delay + MIN_REQUEST_TIME > left:
            passed = self._deadline_passed(
                method,
                url,
                sent=sent_before,
                what=f"before a retry in {delay:.1f}s after {type(error).__name__}",
            )
            passed.retry_after = delay
            raise passed from error
        log.log(level, "%s: waiting %.2fs before retrying after %s", self.system, delay, type(error).__name__)
        self.sleep(delay)

    def _transport_error(self, exc: Exception, method: str, idempotent: bool) -> errors.ConnectorError:
        if never_connected(exc):
            # No connection was made (refused, DNS, connect timeout): nothing was sent, so even a
            # POST may be retried.
            klass = errors.Timeout if isinstance(exc, requests.Timeout) else errors.Unavailable
            return klass(f"could not connect: {exc}", system=self.system)
        if isinstance(exc, requests.Timeout):
            return errors.Timeout(
                f"no answer in time: {exc}", system=self.system, outcome_unknown=not idempotent
            )
        if isinstance(exc, requests.ConnectionError):
            return errors.Unavailable(
                f"connection failed: {exc}", system=self.system, outcome_unknown=not idempotent
            )
        return errors.Unavailable(
            f"request failed: {exc}", system=self.system, outcome_unknown=not idempotent
        )

    def _error_for(self, response: requests.Response) -> errors.ConnectorError:
        try:
            message, field_errors = self.parse_error(response)
        except Exception:  # noqa: BLE001 - a parser must not hide the real error
            message, field_errors = None, {}
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        error = errors.ConnectorError.from_response(
            self.system, response, message=message, field_errors=field_errors, retry_after=retry_after
        )
        return self.classify_error(response, error)

    def _record(self, method, url, started, t0, attempt, response, body, error: str = "") -> None:
        if self.recorder is None:
            return
        record = CallRecord(
            system=self.system,
            method=method,
            url=redact_url(url),
            started_at=started,
            duration_ms=int((time.perf_counter() - t0) * 1000),
            attempt=attempt,
            status_code=response.status_code if response is not None else None,
            error=redact_text(error),
            request_excerpt=(
                redact_body(body, 1000)
                if isinstance(body, bytes | str | dict | list | tuple)
                else f"<streamed body: {getattr(body, 'description', type(body).__name__)}>"
                if body is not None
                else ""
            ),
            response_excerpt=(
                redact_body(response.content, 1000)
                if response is not None and response.status_code >= 400
                else ""
            ),
            tenant_id=self.tenant_id,
        )
        try:
            self.recorder(record)
        except Exception:  # noqa: BLE001 - losing an ApiCall row must never fail the call itself
            log.exception("could not record API call %s %s", method, record.url)

    # ---- conveniences -------------------------------------------------------------------------
    def json(self, response: requests.Response) -> Any:
        """Parse a JSON body or raise UnexpectedResponse naming the system, status and an excerpt."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise errors.UnexpectedResponse(
                "expected JSON, got something else",
                system=self.system,
                status=response.status_code,
                body_excerpt=errors.body_excerpt(response),
            ) from exc


def paginate(
    fetch_page: Callable[[Any], tuple[Iterable[Any], Any]],
    first_cursor: Any = None,
    *,
    max_pages: int = 100_000,
) -> Iterator[Any]:
    """Yield items page by page; `fetch_page(cursor)` returns (items, next_cursor or None).

    Only one page is held in memory at a time, so a 100k-record read stays flat.
    """
    cursor = first_cursor
    for _ in range(max_pages):
        items, cursor = fetch_page(cursor)
        yield from items
        if cursor is None:
            return
    raise errors.UnexpectedResponse(f"pagination did not end after {max_pages} pages")
