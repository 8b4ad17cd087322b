"""Asana REST client (https://app.asana.com/api/1.0): one small method per endpoint on top of HttpClient.

Vendor facts relied on (sources in /work/shared/reference/asana.md):
- every body is wrapped in {"data": …} both ways (§2.1); errors are {"errors": [{message, help,
  phrase}]}, `phrase` on 500s only, to quote to Asana support (§2.2);
- lists page with `limit` (1–100) + an opaque `offset` that expires (§2.3): pages are generators and
  offsets are never persisted; a 400 about the offset restarts the listing once, a 400 "truncated"
  raises ResultTruncated so the caller splits the query;
- `opt_fields` REPLACES the default field set and list endpoints are compact (§2.4), so every call
  names its fields. The spec's opt_fields enums list parent paths only (`custom_fields.enum_value`,
  never `….gid`): the gid of every included object is always returned, so we ask for the parent;
- `Asana-Change` response headers announce deprecations (§2.5): logged once per value per process;
- POST is never retried blindly (§4.6); 429 honours Retry-After (§3) — both in HttpClient;
- PAT and OAuth are both `Authorization: Bearer` (§1.1); OAuth access tokens last ~1 h and are
  refreshed at `{scheme}://{host}/-/oauth_token` (§1.2) on expiry or after a 401, once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.utils import timezone

from integrations.base import errors
from integrations.base.http import HttpClient
from integrations.base.ratelimit import budget_for

from .attachments import AttachmentsMixin
from .auth import OAuthAuth, PatAuth
from .directory import DirectoryMixin
from .shapes import (  # re-exported: the client's callers read the API's shapes from here too
    CLOCK_OFFSET_MAX_AGE,
    PAGE_SIZE,
    DuplicateWebhook,
    ResultTruncated,
    _clock_offsets,
    _seen_changes,
    token_url_for,
)
from .tasks import TasksMixin

log = logging.getLogger(__name__)


# ---- the client ----------------------------------------------------------------------------------


@dataclass
class AsanaClient(TasksMixin, DirectoryMixin, AttachmentsMixin, HttpClient):
    auth: PatAuth | OAuthAuth | None = None
    workspace_gid: str = ""

    system = "asana"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.auth is None:
            raise errors.ConfigurationError("AsanaClient needs credentials (PatAuth or OAuthAuth)")
        self.session.hooks["response"].append(self._log_deprecations)
        self.session.hooks["response"].append(self._learn_clock)
        if isinstance(self.auth, PatAuth):
            self.register_secrets(self.auth.token)
        else:
            c = self.auth.connection
            self.register_secrets(c.client_secret, c.refresh_token, c.access_token)

    # ---- HttpClient hooks ------------------------------------------------------------------------
    def apply_auth(self, headers: dict[str, str]) -> None:
        headers["Authorization"] = f"Bearer {self.auth.bearer(self)}"

    def reauthenticate(self) -> bool:
        return self.auth.refresh(self)

    def parse_error(self, response: requests.Response) -> tuple[str | None, dict[str, str]]:
        try:
            body = response.json()
        except ValueError:
            return None, {}
        items = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return errors.default_message(response) or None, {}
        messages, field_errors = [], {}
        for item in items:
            message = str(item.get("message") or "")
            if item.get("phrase"):
                log.warning(
                    "asana %s error phrase %r (quote it to Asana support): %s",
                    response.status_code,
                    item["phrase"],
                    message,
                )
                message += f" (phrase: {item['phrase']})"
            match = re.match(r"^([\w.\[\]]+): (.+)$", item.get("message") or "")
            if match:
                field_errors[match.group(1)] = match.group(2)
            messages.append(message)
        return "; ".join(messages), field_errors

    def classify_error(
        self, response: requests.Response, error: errors.ConnectorError
    ) -> errors.ConnectorError:
        try:
            items = response.json().get("errors") or []
            error.vendor_code = next((i["phrase"] for i in items if i.get("phrase")), "")
        except (ValueError, AttributeError, TypeError):
            pass
        status, text = response.status_code, (error.message or "").lower()
        if status == 401 and not response.url.startswith(token_url_for(self.base_url)):
            error.message = f"{self.auth.kind} rejected: {error.message}"
        elif status == 403 and "duplicated webhook" in text:
            return DuplicateWebhook(
                error.message, system=self.system, status=status, body_excerpt=error.body_excerpt
            )
        elif status == 400 and "truncat" in text:
            return ResultTruncated(
                f"{error.message} — the result set is too large; split the query (by section, team or "
                "a narrower modified_since)",
                system=self.system,
                status=status,
                body_excerpt=error.body_excerpt,
            )
        return error

    def _log_deprecations(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        value = response.headers.get("Asana-Change")
        if value and value not in _seen_changes:
            _seen_changes.add(value)
            log.warning(
                "asana: deprecation announced by Asana-Change header: %s (on %s %s)",
                value,
                response.request.method,
                urlsplit(response.request.url).path,
            )

    # ---- Asana's clock ------------------------------------------------------------------------------
    def _learn_clock(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        value = response.headers.get("Date")
        if not value:
            return
        try:
            asana_time = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        _clock_offsets[urlsplit(self.base_url).netloc] = (asana_time, time.monotonic())

    def _asana_timestamp(self) -> float | None:
        known = _clock_offsets.get(urlsplit(self.base_url).netloc)
        if known is None:
            return None
        elapsed = time.monotonic() - known[1]
        return None if elapsed > CLOCK_OFFSET_MAX_AGE else known[0] + elapsed

    def clock_offset(self) -> float | None:
        """Seconds Asana's clock is ahead of ours, from a recent answer's Date header (None: unknown)."""
        stamp = self._asana_timestamp()
        return None if stamp is None else stamp - time.time()

    def asana_now(self) -> datetime:
        """Asana's current time. Measured from the Date header of a recent answer, or of a cheap read
        made for the purpose; an Asana that sends no Date header (never seen) falls back to our clock."""
        stamp = self._asana_timestamp()
        if stamp is None:
            self.me()
            stamp = self._asana_timestamp()
        if stamp is None:
            log.warning("asana: no Date header in Asana's answers; using this host's clock")
            return timezone.now()
        return datetime.fromtimestamp(stamp, tz=UTC)

    def to_asana_time(self, ours: datetime) -> datetime:
        """A moment taken on this host's clock, as Asana's clock shows it."""
        return ours + (self.asana_now() - timezone.now())

    # ---- envelope and paging ---------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        fields: Iterable[str] = (),
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        whole_body: bool = False,
    ) -> Any:
        """One request with the {"data": …} envelope both ways; the unwrapped data (or the whole body)."""
        query = dict(params or {})
        if fields:
            query["opt_fields"] = ",".join(fields)
        body = {"data": dict(data)} if data is not None else None
        response = self.request(method, path, params=query or None, json_body=body)
        payload = self.json(response)
        if response.status_code == 204 or payload is None:
            return None
        if not isinstance(payload, dict) or "data" not in payload:
            raise errors.UnexpectedResponse(
                "Asana answer has no 'data' envelope",
                system=self.system,
                status=response.status_code,
                body_excerpt=errors.body_excerpt(response),
            )
        return payload if whole_body else payload["data"]

    def iter_pages(
        self,
        path: str,
        *,
        fields: Iterable[str],
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, 100 per request, following next_page.offset (never stored)."""
        base = {**(params or {}), "limit": PAGE_SIZE, "opt_fields": ",".join(fields)}
        offset: str | None = None
        restarted = False
        seen: set[str] = set()
        while True:
            query = {**base, **({"offset": offset} if offset else {})}
            try:
                response = self.request("GET", path, params=query)
            except errors.Invalid as exc:
                if offset and not restarted and "offset" in (exc.message or "").lower():
                    # Offsets expire "as data may have changed" (§2.3): start over once, skip repeats.
                    log.warning("asana: offset expired while listing %s; restarting the listing", path)
                    restarted, offset = True, None
                    continue
                raise
            payload = self.json(response) or {}
            if "data" not in payload:
                raise errors.UnexpectedResponse(
                    "Asana list answer has no 'data' envelope",
                    system=self.system,
                    body_excerpt=errors.body_excerpt(response),
                )
            for item in payload["data"] or []:
                gid = str(item.get("gid", ""))
                if gid in seen:
                    continue
                seen.add(gid)
                yield item
            offset = (payload.get("next_page") or {}).get("offset")
            if not offset:
                return


def client_for(
    connection: Any, *, budget_clock: Callable[[], float] | None = None, **overrides: Any
) -> AsanaClient:
    """The client for an AsanaConnection, with the token's rate budget shared by every worker.

    `budget_clock` (tests) drives the shared budget with a fake clock; pair it with a `sleep` that
    advances the same clock.
    """
    auth = (
        OAuthAuth(connection)
        if connection.auth_mode == "oauth"
        else PatAuth(connection.personal_access_token)
    )
    if "rate_limiter" not in overrides:
        overrides["rate_limiter"] = shared_budget(connection, auth, clock=budget_clock)
    return AsanaClient(
        base_url=connection.api_base_url,
        tenant_id=connection.tenant_id,
        auth=auth,
        workspace_gid=connection.workspace_gid,
        **overrides,
    )


def shared_budget(
    connection: Any, auth: PatAuth | OAuthAuth, *, clock: Callable[[], float] | None = None
) -> Any:
    """The per-token budget (§3): paced below requests_per_minute, writes capped in flight, shared by
    every worker process through integrations.base.ratelimit."""
    return budget_for(
        f"asana:{auth.budget_key()}",
        per_minute=connection.requests_per_minute,
        max_in_flight_writes=connection.max_writes_in_flight,
        clock=clock,
    )
