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
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from django.utils import timezone

from integrations.base import errors
from integrations.base.http import HttpClient
from integrations.base.ratelimit import budget_for, fingerprint

from . import fields as cf

log = logging.getLogger(__name__)

PAGE_SIZE = 100
REFRESH_MARGIN = timedelta(seconds=60)
_seen_changes: set[str] = set()

# ---- opt_fields (all within the spec's enums; gid is always returned) ------------------------------
CUSTOM_FIELD_VALUE_FIELDS = (
    "custom_fields.name",
    "custom_fields.type",
    "custom_fields.resource_subtype",
    "custom_fields.display_value",
    "custom_fields.enabled",
    "custom_fields.text_value",
    "custom_fields.number_value",
    "custom_fields.enum_value",
    "custom_fields.multi_enum_values",
    "custom_fields.date_value",
    "custom_fields.people_value",
)
TASK_FIELDS = (
    "name",
    "resource_subtype",
    "approval_status",
    "completed",
    "completed_at",
    "created_at",
    "modified_at",
    "due_on",
    "notes",
    "assignee",
    "permalink_url",
    "memberships.project",
    "memberships.section",
    *CUSTOM_FIELD_VALUE_FIELDS,
)
CUSTOM_FIELD_SETTING_FIELDS = (
    "custom_field",
    "custom_field.name",
    "custom_field.type",
    "custom_field.resource_subtype",
    "custom_field.enum_options",
    "custom_field.enum_options.name",
    "custom_field.enum_options.enabled",
    "custom_field.precision",
    "custom_field.is_formula_field",
    "custom_field.is_value_read_only",
    "custom_field.enabled",
    "is_important",
    "parent",
)
WEBHOOK_FIELDS = (
    "active",
    "resource",
    "resource.name",
    "target",
    "filters",
    "created_at",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
)
USER_FIELDS = ("name", "email")
ME_FIELDS = ("name", "email", "workspaces", "workspaces.name")
MEMBERSHIP_FIELDS = ("user", "user.name", "workspace", "is_active", "is_admin", "is_guest", "is_view_only")
PROJECT_FIELDS = ("name", "archived", "workspace", "workspace.name")
SECTION_FIELDS = ("name",)
STORY_FIELDS = ("text", "created_at", "created_by")
# What the approval binding reads from a task's history: who changed what, when, on Asana's clock.
HISTORY_STORY_FIELDS = (
    "created_at",
    "created_by",
    "resource_subtype",
    "text",
    "custom_field",
    "new_enum_value",
    "old_enum_value",
    "new_approval_status",
    "old_approval_status",
)
# Asana's clock, learned from the `Date` header of its answers (RFC 7231, 1 s resolution), per API host:
# (Asana's time, time.monotonic() when it arrived). Asana's time now is that plus the monotonic time
# since — immune to this host's wall clock being stepped. Anything deciding about Asana data (reconcile
# windows, cursors, approval binding) uses Asana's time, never ours (ARCHITECTURE §6a).
_clock_offsets: dict[str, tuple[float, float]] = {}
CLOCK_OFFSET_MAX_AGE = 600.0
# Fields a PUT /tasks/{gid} may carry ([OAS] TaskRequestBase); anything else is refused before sending.
WRITABLE_TASK_FIELDS = frozenset(
    {
        "name",
        "notes",
        "html_notes",
        "due_on",
        "due_at",
        "start_on",
        "assignee",
        "completed",
        "approval_status",
        "resource_subtype",
        "custom_fields",
        "external",
        "liked",
    }
)


class ResultTruncated(errors.Invalid):
    """Asana truncated a very large result set (400 on the last page, §2.2): split the query."""


class DuplicateWebhook(errors.Forbidden):
    """403 "Duplicated webhook": one already exists for this resource + target (§6.1) → adopt it."""


def token_url_for(api_base_url: str) -> str:
    """The OAuth token endpoint on the API's host: https://app.asana.com/-/oauth_token (§1.2)."""
    parts = urlsplit(api_base_url)
    return f"{parts.scheme}://{parts.netloc}/-/oauth_token"


def approval_outcome(task: Mapping[str, Any]) -> str | None:
    """pending | approved | rejected | changes_requested for approval tasks, else None.

    `completed` is true for rejected and changes_requested too (§4.4): never read it for approvals.
    """
    if task.get("resource_subtype") != "approval":
        return None
    return task.get("approval_status") or "pending"


def is_approved(task: Mapping[str, Any]) -> bool:
    return approval_outcome(task) == "approved"


@dataclass
class CreatedWebhook:
    webhook: dict[str, Any]
    secret: str  # the X-Hook-Secret from the 201 body ("" if Asana ever stops echoing it there)


# ---- credentials ---------------------------------------------------------------------------------


class PatAuth:
    """A personal access (or service account) token: nothing to refresh."""

    kind = "personal access token"

    def __init__(self, token: str):
        if not token:
            raise errors.ConfigurationError("Asana connection has no personal access token")
        self.token = token

    def bearer(self, client: AsanaClient) -> str:
        return self.token

    def refresh(self, client: AsanaClient) -> bool:
        return False

    def budget_key(self) -> str:
        return fingerprint(self.token)


class OAuthAuth:
    """OAuth access token refreshed with the stored refresh token; new tokens persisted at once."""

    kind = "OAuth access token"

    def __init__(self, connection: Any):
        if not (connection.refresh_token and connection.client_id and connection.client_secret):
            raise errors.ConfigurationError(
                "Asana OAuth connection needs client_id, client_secret and a refresh token"
            )
        self.connection = connection

    def budget_key(self) -> str:
        # The access token changes hourly; the budget belongs to the grant (one connection).
        return fingerprint(f"oauth:{self.connection.pk}:{self.connection.client_id}")

    def bearer(self, client: AsanaClient) -> str:
        conn = self.connection
        expires = conn.token_expires_at
        if not conn.access_token or expires is None or expires - REFRESH_MARGIN <= timezone.now():
            self.refresh(client)
        return conn.access_token

    def _adopt_fresh_from_db(self, used_token: str) -> bool:
        """Another worker may have refreshed already: take its token instead of refreshing again."""
        model = type(self.connection)
        row = model.objects.filter(pk=self.connection.pk).first()
        if row is None or not row.access_token or row.access_token == used_token:
            return False
        if row.token_expires_at and row.token_expires_at - REFRESH_MARGIN > timezone.now():
            for name in ("access_token", "refresh_token", "token_expires_at"):
                setattr(self.connection, name, getattr(row, name))
            return True
        return False

    def refresh(self, client: AsanaClient) -> bool:
        conn = self.connection
        if conn.pk and self._adopt_fresh_from_db(conn.access_token):
            return True
        form = {
            "grant_type": "refresh_token",
            "client_id": conn.client_id,
            "client_secret": conn.client_secret,
            "refresh_token": conn.refresh_token,
        }
        try:
            response = client.request(
                "POST",
                token_url_for(client.base_url),
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                authenticated=False,
            )
        except (errors.AuthFailed, errors.Invalid, errors.Forbidden) as exc:
            # A worker that refreshed a moment ago may have rotated the refresh token under us.
            if conn.pk and self._adopt_fresh_from_db(conn.access_token):
                return True
            raise errors.AuthFailed(
                f"the OAuth refresh token was rejected ({exc.message}); reconnect the Asana app",
                system="asana",
                status=exc.status,
            ) from exc
        body = client.json(response) or {}
        access = body.get("access_token")
        if not access:
            raise errors.UnexpectedResponse("OAuth token response has no access_token", system="asana")
        client.register_secrets(access, body.get("refresh_token"))
        conn.access_token = access
        # Rotation is UNVERIFIED (§1.2): keep the old refresh token when none comes back.
        conn.refresh_token = body.get("refresh_token") or conn.refresh_token
        conn.token_expires_at = timezone.now() + timedelta(seconds=int(body.get("expires_in") or 3600))
        if conn.pk:
            type(conn).objects.filter(pk=conn.pk).update(
                access_token=conn.access_token,
                refresh_token=conn.refresh_token,
                token_expires_at=conn.token_expires_at,
            )
        log.info("asana: refreshed the OAuth access token of connection %s", conn.pk)
        return True


# ---- the client ----------------------------------------------------------------------------------


@dataclass
class AsanaClient(HttpClient):
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

    # ---- tasks (§4) -----------------------------------------------------------------------------
    def get_task(self, task_gid: str, *, fields: Iterable[str] = TASK_FIELDS) -> dict[str, Any]:
        """GET /tasks/{gid} — [OAS] getTask."""
        return self._call("GET", f"/tasks/{task_gid}", fields=fields)

    def iter_project_tasks(
        self,
        project_gid: str,
        *,
        modified_since: datetime | str | None = None,
        fields: Iterable[str] = TASK_FIELDS,
    ) -> Iterator[dict[str, Any]]:
        """GET /tasks?project=&modified_since= — read-your-write change polling on any plan (§4.7)."""
        params: dict[str, Any] = {"project": project_gid}
        if modified_since is not None:
            params["modified_since"] = (
                modified_since.isoformat() if isinstance(modified_since, datetime) else modified_since
            )
        return self.iter_pages("/tasks", fields=fields, params=params)

    def find_task_by_external(self, external_gid: str, *, fields: Iterable[str]) -> dict[str, Any] | None:
        """GET /tasks/external:<gid> — a task by the app-private external id (OAuth only, §4.5)."""
        try:
            return self._call("GET", f"/tasks/external:{quote(external_gid, safe='')}", fields=fields)
        except errors.NotFound:
            return None

    def search_tasks(
        self,
        *,
        created_by: str | None = None,
        created_after: datetime | None = None,
        fields: Iterable[str],
        workspace_gid: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """GET /workspaces/{gid}/tasks/search (§4.7): premium only (402 otherwise), eventually consistent
        (10–60 s behind writes), no pagination — walked by created_at with `created_at.after`."""
        params: dict[str, Any] = {"sort_by": "created_at", "sort_ascending": "true"}  # no limit param (spec)
        if created_by:
            params["created_by.any"] = created_by
        params.update(extra or {})
        workspace = workspace_gid or self.workspace_gid
        out: list[dict[str, Any]] = []
        after = created_after
        for _page in range(50):  # a bounded walk: a reconcile window holds few of our own tasks
            if after is not None:
                params["created_at.after"] = after.isoformat()
            page = self._call(
                "GET", f"/workspaces/{workspace}/tasks/search", fields=(*fields, "created_at"), params=params
            )
            out.extend(page or [])
            if not page or len(page) < PAGE_SIZE:
                return out
            newest = max((t.get("created_at") or "" for t in page), default="")
            parsed = _parse_asana_time(newest)
            if parsed is None or (after is not None and parsed <= after):
                return out
            after = parsed
        return out

    def iter_stories(self, task_gid: str, *, fields: Iterable[str] = HISTORY_STORY_FIELDS):
        """GET /tasks/{gid}/stories — the task's history, oldest first ([OAS] getStoriesForTask)."""
        return self.iter_pages(f"/tasks/{task_gid}/stories", fields=fields)

    def create_task(
        self,
        *,
        name: str,
        project_gid: str,
        section_gid: str | None = None,
        custom_fields: Mapping[str, Any] | None = None,
        notes: str | None = None,
        due_on: str | None = None,
        assignee: str | None = None,
        approval: bool = False,
        extra: Mapping[str, Any] | None = None,
        fields: Iterable[str] = TASK_FIELDS,
    ) -> dict[str, Any]:
        """POST /tasks — project, section (via `memberships`) and custom field values in ONE call (§4.1).

        `custom_fields` must already be wire values (see fields.encode_custom_fields). Never retried
        blindly: a timeout or 5xx raises with outcome_unknown, and the caller reconciles (§4.6).
        """
        data: dict[str, Any] = {"name": name, "projects": [project_gid]}
        if section_gid:
            data["memberships"] = [{"project": project_gid, "section": section_gid}]
        if custom_fields:
            data["custom_fields"] = dict(custom_fields)
        if notes is not None:
            data["notes"] = notes
        if due_on:
            data["due_on"] = due_on
        if assignee:
            data["assignee"] = assignee
        if approval:
            data["resource_subtype"] = "approval"
        data.update(extra or {})
        try:
            return self._call("POST", "/tasks", fields=fields, data=data)
        except errors.Invalid as exc:
            # reference §4.1 marks section placement through `memberships` UNVERIFIED (the spec calls it
            # read-only). A 400 about it created nothing, so create without it and place the task after.
            if "memberships" not in data or "membership" not in (exc.message or "").lower():
                raise
            log.warning(
                "asana: memberships refused on create (%s); placing the task with addTask", exc.message
            )
            data.pop("memberships")
            task = self._call("POST", "/tasks", fields=fields, data=data)
            self.move_to_section(task["gid"], section_gid)
            return task

    def update_task(
        self,
        task_gid: str,
        changes: Mapping[str, Any] | None = None,
        *,
        desired: Mapping[str, Any] | None = None,
        last_known: Mapping[str, Any] | None = None,
        fields: Iterable[str] = TASK_FIELDS,
    ) -> dict[str, Any] | None:
        """PUT /tasks/{gid} with only the changed fields (§4.2: others' edits survive); None = no call.

        Pass either `changes`, or `desired` plus `last_known` (a task as read, or the last payload written).
        """
        if changes is None:
            changes = task_changes(desired or {}, last_known or {})
        unknown = set(changes) - WRITABLE_TASK_FIELDS
        if unknown:
            raise errors.ConfigurationError(f"not writable with PUT /tasks: {sorted(unknown)}")
        if not changes:
            return None
        return self._call("PUT", f"/tasks/{task_gid}", fields=fields, data=changes)

    def complete_task(self, task_gid: str, completed: bool = True) -> dict[str, Any]:
        return self._call("PUT", f"/tasks/{task_gid}", fields=TASK_FIELDS, data={"completed": completed})

    def uncomplete_task(self, task_gid: str) -> dict[str, Any]:
        return self.complete_task(task_gid, completed=False)

    def move_to_section(self, task_gid: str, section_gid: str) -> None:
        """POST /sections/{gid}/addTask — also removes it from the project's other sections (§4.1)."""
        self._call("POST", f"/sections/{section_gid}/addTask", data={"task": task_gid})

    def add_to_project(self, task_gid: str, project_gid: str, section_gid: str | None = None) -> None:
        """POST /tasks/{gid}/addProject — the documented fallback for placing a task in a section."""
        data = {"project": project_gid, **({"section": section_gid} if section_gid else {})}
        self._call("POST", f"/tasks/{task_gid}/addProject", data=data)

    def add_comment(self, task_gid: str, text: str) -> dict[str, Any]:
        """POST /tasks/{gid}/stories {text} — [OAS] createStoryForTask."""
        return self._call("POST", f"/tasks/{task_gid}/stories", fields=STORY_FIELDS, data={"text": text})

    # ---- projects, sections, custom fields (§5) ---------------------------------------------------
    def get_project(self, project_gid: str) -> dict[str, Any]:
        return self._call("GET", f"/projects/{project_gid}", fields=PROJECT_FIELDS)

    def list_sections(self, project_gid: str) -> list[dict[str, Any]]:
        return list(self.iter_pages(f"/projects/{project_gid}/sections", fields=SECTION_FIELDS))

    def custom_field_settings(self, project_gid: str) -> list[dict[str, Any]]:
        """GET /projects/{gid}/custom_field_settings with the definitions we validate against."""
        return list(
            self.iter_pages(
                f"/projects/{project_gid}/custom_field_settings", fields=CUSTOM_FIELD_SETTING_FIELDS
            )
        )

    def project_custom_fields(self, project_gid: str) -> dict[str, cf.FieldSpec]:
        return cf.specs_from_settings(self.custom_field_settings(project_gid))

    # ---- webhooks (§6; the receiving view lives in webhooks.py) ----------------------------------
    def create_webhook(
        self, resource_gid: str, target: str, filters: list[dict[str, Any]] | None = None
    ) -> CreatedWebhook:
        """POST /webhooks. Asana handshakes with `target` while this call is open (§6.2): never call it
        from the web worker that must answer the handshake. The secret comes back in the 201 body."""
        data: dict[str, Any] = {"resource": resource_gid, "target": target}
        if filters:
            data["filters"] = filters
        body = self._call("POST", "/webhooks", fields=WEBHOOK_FIELDS, data=data, whole_body=True)
        webhook, secret = body["data"], str(body.get("X-Hook-Secret") or "")
        self.register_secrets(secret)
        return CreatedWebhook(webhook=webhook, secret=secret)

    def list_webhooks(
        self,
        workspace_gid: str | None = None,
        *,
        resource_gid: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET /webhooks?workspace=[&resource=] with the failure fields the watchdog reads (§6.5)."""
        params = {"workspace": workspace_gid or self.workspace_gid}
        if resource_gid:
            params["resource"] = resource_gid
        return list(self.iter_pages("/webhooks", fields=WEBHOOK_FIELDS, params=params))

    def get_webhook(self, webhook_gid: str) -> dict[str, Any]:
        return self._call("GET", f"/webhooks/{webhook_gid}", fields=WEBHOOK_FIELDS)

    def delete_webhook(self, webhook_gid: str) -> None:
        self._call("DELETE", f"/webhooks/{webhook_gid}")

    # ---- users, workspace and team membership (§7) -----------------------------------------------
    def me(self) -> dict[str, Any]:
        return self._call("GET", "/users/me", fields=ME_FIELDS)

    def get_workspace(self, workspace_gid: str) -> dict[str, Any]:
        return self._call("GET", f"/workspaces/{workspace_gid}", fields=("name", "is_organization"))

    def iter_users(self, workspace_gid: str | None = None) -> Iterator[dict[str, Any]]:
        """GET /users?workspace= — paginated, unlike the 2000-capped /workspaces/{gid}/users."""
        return self.iter_pages(
            "/users", fields=USER_FIELDS, params={"workspace": workspace_gid or self.workspace_gid}
        )

    def iter_workspace_memberships(
        self,
        workspace_gid: str | None = None,
        *,
        user: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        params = {"user": user} if user else None
        return self.iter_pages(
            f"/workspaces/{workspace_gid or self.workspace_gid}/workspace_memberships",
            fields=MEMBERSHIP_FIELDS,
            params=params,
        )

    def roster(self, workspace_gid: str | None = None) -> list[dict[str, Any]]:
        """Users joined with their membership flags: gid, name, email, is_active, is_admin, is_guest."""
        flags = {m["user"]["gid"]: m for m in self.iter_workspace_memberships(workspace_gid) if m.get("user")}
        out = []
        for user in self.iter_users(workspace_gid):
            m = flags.get(user["gid"], {})
            out.append(
                {
                    "gid": user["gid"],
                    "name": user.get("name"),
                    "email": (user.get("email") or "").lower(),
                    "member": bool(m),
                    **{k: bool(m.get(k)) for k in ("is_active", "is_admin", "is_guest")},
                }
            )
        return out

    def add_user_to_workspace(self, user: str, workspace_gid: str | None = None) -> dict[str, Any]:
        """POST /workspaces/{gid}/addUser {user: gid or e-mail} — returns the user (§7)."""
        return self._call(
            "POST",
            f"/workspaces/{workspace_gid or self.workspace_gid}/addUser",
            fields=USER_FIELDS,
            data={"user": user},
        )

    def remove_user_from_workspace(self, user: str, workspace_gid: str | None = None) -> None:
        """POST /workspaces/{gid}/removeUser — caller must be an admin; a PAT owner inherits resources."""
        self._call(
            "POST", f"/workspaces/{workspace_gid or self.workspace_gid}/removeUser", data={"user": user}
        )

    def add_user_to_team(self, team_gid: str, user: str) -> dict[str, Any]:
        return self._call(
            "POST", f"/teams/{team_gid}/addUser", fields=("user", "team", "is_guest"), data={"user": user}
        )

    def remove_user_from_team(self, team_gid: str, user: str) -> None:
        self._call("POST", f"/teams/{team_gid}/removeUser", data={"user": user})


def _parse_asana_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


parse_asana_time = _parse_asana_time


def _normalise(value: Any) -> Any:
    if isinstance(value, Mapping) and "gid" in value:
        return str(value["gid"])
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def task_changes(desired: Mapping[str, Any], last_known: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of `desired` that differ from `last_known` (custom fields compared one by one).

    `last_known` may be a task as read from Asana (custom_fields as a list of entries) or the last
    payload we wrote (custom_fields as {gid: wire value}).
    """
    changes: dict[str, Any] = {}
    for key, value in desired.items():
        if key == "custom_fields":
            known = last_known.get("custom_fields") or {}
            if isinstance(known, list):
                known = {str(e["gid"]): cf.wire_value_of(e) for e in known if e.get("gid")}
            cf_changes = {
                gid: v
                for gid, v in (value or {}).items()
                if gid not in known or _normalise(known[gid]) != _normalise(v)
            }
            if cf_changes:
                changes["custom_fields"] = cf_changes
        elif key not in last_known or _normalise(last_known[key]) != _normalise(value):
            changes[key] = value
    return changes


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
