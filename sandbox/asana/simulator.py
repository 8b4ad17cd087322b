"""A stateful Asana that speaks the real REST contract (https://app.asana.com/api/1.0).

What it models (facts and sources in /work/shared/reference/asana.md):
- PATs and OAuth (access tokens expire; refresh at {host}/-/oauth_token, §1.2); 401 "Not Authorized";
- the {"data": …} envelope, Asana error bodies {"errors": [{message, help, phrase}]} (§2.1–2.2);
- `limit` + opaque, expiring `offset` paging with `next_page` (§2.3); `opt_fields` replacing the
  default field set, compact records from list endpoints (§2.4);
- a per-token rate limiter (requests/minute and writes in flight) answering 429 + Retry-After (§3),
  on an injectable clock so tests never sleep;
- workspaces, users + workspace memberships (is_active/is_admin/is_guest), teams, projects,
  sections, custom fields of every type with precision, enabled/disabled options, formula and
  read-only flags, enabled/disabled values when a field leaves a project (§5);
- tasks incl. approval tasks (approval_status kept in sync with completed, §4.4), memberships,
  `modified_at` bumped on change and `modified_since` filtering, stories;
- webhooks with the REAL handshake (§6.2): the target is called through `self.deliver` with
  X-Hook-Secret while the create is open; 201 carries the secret in the body; 403 for duplicates and
  localhost; events batched per webhook, signed X-Hook-Signature = HMAC-SHA256 hex of the raw body
  (§6.3), heartbeats, failure fields and deletion after repeated failures (§6.5).
In-process, event delivery is explicit (`deliver_pending_events()`, `send_heartbeats()`); served, a
background thread delivers by itself (delivery.py). Clock, search and people: search.py, stories.py;
listing routes: listing.py; write validation: validation.py. Controls: `sim.controls()`.
Seeding: the `add_*` helpers, and `build_demo()` with the fixed GIDs in `DEMO`.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..core import Deliverer, SimRequest, SimResponse, Simulator
from .attachments import AttachmentsMixin
from .delivery import DeliveryMixin
from .directory import DirectoryMixin
from .helpers import (
    COMPACT,
    HELP,
    OFFSET_EXPIRED,
    RATE_LIMIT_MESSAGE,
    TRUNCATED,
)
from .helpers import err as _err
from .helpers import iso as _iso
from .helpers import pick as _pick
from .helpers import tree as _tree
from .listing import ListingMixin
from .projects import ProjectsMixin
from .render import RenderMixin
from .search import SearchMixin
from .seeding import SeedingMixin
from .stories import StoriesMixin
from .tasks import TasksMixin
from .webhooks import WebhooksMixin


class AsanaSimulator(
    RenderMixin,
    DirectoryMixin,
    ProjectsMixin,
    TasksMixin,
    WebhooksMixin,
    SeedingMixin,
    ListingMixin,
    SearchMixin,
    StoriesMixin,
    DeliveryMixin,
    AttachmentsMixin,
    Simulator,
):
    name = "asana"
    contract = "asana"

    def __init__(
        self,
        base_url: str = "https://app.asana.com/api/1.0",
        *,
        strict_contract: bool = False,
        deliver: Deliverer | None = None,
        clock: Callable[[], float] | None = None,
        requests_per_minute: int | None = None,
        max_writes_in_flight: int | None = None,
        access_token_ttl: int = 3600,
        rotate_refresh_tokens: bool = False,
        max_delivery_failures: int = 5,
        allow_localhost: bool = False,
        offset_ttl: float = 3600,
        truncate_results_after: int | None = None,
    ):
        super().__init__(base_url, strict_contract=strict_contract, deliver=deliver)
        parts = urlsplit(self.base_url)
        self.token_url = f"{parts.scheme}://{parts.netloc}/-/oauth_token"
        self.clock = clock or time.time
        self.requests_per_minute = requests_per_minute
        self.max_writes_in_flight = max_writes_in_flight
        self.access_token_ttl = access_token_ttl
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.max_delivery_failures = max_delivery_failures
        self.allow_localhost = allow_localhost
        self.offset_ttl = offset_ttl
        self.truncate_results_after = truncate_results_after
        self._next_gid = 1_300_000_000_000_000
        self.workspaces: dict[str, dict] = {}
        self.users: dict[str, dict] = {}
        self.memberships: dict[tuple[str, str], dict] = {}  # (workspace, user) -> flags
        self.teams: dict[str, dict] = {}
        self.projects: dict[str, dict] = {}
        self.sections: dict[str, dict] = {}
        self.custom_fields: dict[str, dict] = {}
        self.enum_options: dict[str, dict] = {}  # option gid -> {gid, name, enabled, color, field}
        self.tasks: dict[str, dict] = {}
        self.stories: dict[str, dict] = {}
        self.webhooks: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}  # bearer -> {user, kind, expires_at, client}
        self.oauth_clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, dict] = {}
        self.auth_codes: dict[str, dict] = {}
        self.offsets: dict[str, tuple[int, float]] = {}
        self.requests: list[SimRequest] = []
        self.rate_limited: list[SimRequest] = []
        self.deliveries: list[tuple[str, int, bytes]] = []  # (webhook gid, status, body)
        self.change_headers: list[str] = []  # Asana-Change values announced on every answer (§2.5)
        self._windows: dict[str, deque] = {}
        self._writes_in_flight: dict[str, int] = {}
        self.clock_offset = 0.0  # seconds added to `clock` (set_clock_offset)
        self.clock_rate = 1.0  # how fast the clock runs from `_clock_anchor` on (set_clock_rate)
        self._clock_anchor: tuple[float, float] | None = None
        self.batch_delay = 1.0  # how long a served sandbox gathers events into one batch (delivery.py)
        self.search_lag = 0.0  # how far the search index trails writes (set_search_lag)
        self.default_person: str | None = None  # who the person_* controls act as by default
        self.deleted_tasks: dict[str, dict] = {}
        self._index: dict[str, list] = {}  # task gid -> [(since, state, task)] (search.py)
        self._acting_in_ui = False
        self._init_attachments()
        self._routes()
        self._attachment_routes()

    # ---- clock, ids, auth ----------------------------------------------------------------------
    def now(self) -> float:
        """The simulator's time: its clock (sped up by `set_clock_rate`) plus the offset a test set
        (`set_clock_offset`)."""
        if self._clock_anchor is None:
            return self.clock() + self.clock_offset
        real, simulated = self._clock_anchor
        return simulated + (self.clock() - real) * self.clock_rate + self.clock_offset

    def now_iso(self) -> str:
        return _iso(self.now())

    def new_gid(self) -> str:
        self._next_gid += 1
        return str(self._next_gid)

    def _user_of(self, req: SimRequest) -> str:
        header = req.headers.get("Authorization") or ""
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        info = self.tokens.get(token)
        if not info or (info["expires_at"] is not None and info["expires_at"] <= self.now()):
            raise _err(401, "Not Authorized")
        return info["user"]

    def _member(self, workspace_gid: str, user_gid: str) -> dict | None:
        return self.memberships.get((workspace_gid, user_gid))

    def _require_member(self, workspace_gid: str, user_gid: str) -> dict:
        membership = self._member(workspace_gid, user_gid)
        if membership is None or not membership["is_active"]:
            raise _err(403, "You do not have access to the requested resource.")
        return membership

    # ---- transport: request log, rate limiter (§3), the token endpoint outside /api/1.0 ----------
    def mount(self, rsps) -> None:
        super().mount(rsps)

        def token_callback(prepared):
            body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
            resp = self.handle(self._request_from(prepared.method, prepared.url, prepared.headers, body))
            return resp.status, resp.headers, resp.body

        rsps.add_callback(
            "POST", re.compile(re.escape(self.token_url) + r"(\?.*)?$"), callback=token_callback
        )

    def handle(self, req: SimRequest) -> SimResponse:
        self.requests.append(req)
        header = req.headers.get("Authorization") or ""
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        write = req.method not in ("GET", "HEAD")
        limited = self._admit(req, key, write) if key else None
        if limited is not None:
            if self.strict_contract:
                self._validate_request(req)
                self._validate_response(req, limited)
            self.request_log.append((req.method, req.path, limited.status))
            self.rate_limited.append(req)
            limited.headers["Date"] = formatdate(self.now(), usegmt=True)
            return limited
        try:
            resp = super().handle(req)
            if self.change_headers and req.path != "/-/oauth_token":
                resp.headers["Asana-Change"] = ", ".join(self.change_headers)
            resp.headers["Date"] = formatdate(self.now(), usegmt=True)
            return resp
        finally:
            if write:
                with self.lock:
                    self.index_tasks()
            if key and write:
                with self.lock:
                    self._writes_in_flight[key] = self._writes_in_flight.get(key, 1) - 1

    def _admit(self, req: SimRequest, key: str, write: bool) -> SimResponse | None:
        """Sliding one-minute window per token, plus a cap on concurrent writes (§3)."""
        with self.lock:
            now = self.now()
            if self.requests_per_minute:
                window = self._windows.setdefault(key, deque())
                while window and window[0] <= now - 60:
                    window.popleft()
                if len(window) >= self.requests_per_minute:
                    wait = max(1, math.ceil(window[0] + 60 - now))
                    return SimResponse.json(
                        {"errors": [{"message": RATE_LIMIT_MESSAGE, "help": HELP}]},
                        429,
                        {"Retry-After": str(wait)},
                    )
                window.append(now)
            if write:
                in_flight = self._writes_in_flight.get(key, 0)
                if self.max_writes_in_flight and in_flight >= self.max_writes_in_flight:
                    return SimResponse.json(
                        {"errors": [{"message": RATE_LIMIT_MESSAGE, "help": HELP}]}, 429, {"Retry-After": "1"}
                    )
                self._writes_in_flight[key] = in_flight + 1
        return None

    def control(self, name: str, /, **params: Any) -> Any:
        """Run a control, then let the search index see what it changed (search.py)."""
        result = super().control(name, **params)
        with self.lock:
            self.index_tasks()
        return result

    def fault_body(self, status: int) -> Any:
        if status == 429:
            return {"errors": [{"message": RATE_LIMIT_MESSAGE, "help": HELP}]}
        if status >= 500:
            return {"errors": [{"message": "Server Error", "phrase": "6 sad squid snuggle softly"}]}
        return {"errors": [{"message": f"Injected error {status}", "help": HELP}]}

    def wrong_method(self, req: SimRequest, allowed: list[str]) -> SimResponse:
        """A known path with a method it does not serve: Asana answers 404 "No matching route"
        (UNVERIFIED wording; SPEC_GAPS.md ASANA-SIM-NO-ROUTE), never a 405 that looks like a fault."""
        return SimResponse.json(self.not_found_body(req), 404)

    def not_found_body(self, req: SimRequest) -> Any:
        return {"errors": [{"message": "No matching route for request", "help": HELP}]}

    # ---- envelope, opt_fields, paging (§2) -------------------------------------------------------
    def _one(self, req: SimRequest, obj: dict, status: int = 200, extra: dict | None = None) -> SimResponse:
        tree = _tree(req.arg("opt_fields"))
        data = obj if tree is None else _pick(obj, tree)
        return SimResponse.json({"data": data, **(extra or {})}, status)

    def _list(self, req: SimRequest, items: list[dict], kind: str, paginate: bool = True) -> SimResponse:
        tree = _tree(req.arg("opt_fields"))
        if tree is None:
            tree = {k: {} for k in ("resource_type", *COMPACT[kind])}
        limit_arg = req.arg("limit")
        if not paginate:  # search: the caller already capped the results (§4.7)
            return SimResponse.json({"data": [_pick(i, tree) for i in items]})
        if limit_arg is None:  # grandfathered: unpaginated, "truncated at about 1,000 objects"
            return SimResponse.json({"data": [_pick(i, tree) for i in items[:1000]]})
        try:
            limit = int(limit_arg)
        except ValueError:
            raise _err(400, "limit: Not a valid integer") from None
        if not 1 <= limit <= 100:
            raise _err(400, "limit: Must be between 1 and 100")
        start = 0
        if req.arg("offset"):
            token = req.arg("offset")
            if token not in self.offsets or self.offsets[token][1] + self.offset_ttl <= self.now():
                raise _err(400, OFFSET_EXPIRED)
            start = self.offsets[token][0]
        end = start + limit
        if self.truncate_results_after is not None and end > self.truncate_results_after:
            raise _err(400, TRUNCATED)
        next_page = None
        if end < len(items):
            token = "eyJ" + secrets.token_urlsafe(18)
            self.offsets[token] = (end, self.now())
            query = [
                (k, v) for k, v in parse_qsl(urlsplit(req.url).query, keep_blank_values=True) if k != "offset"
            ]
            path = f"{req.path}?{urlencode([*query, ('offset', token)])}"
            next_page = {"offset": token, "path": path, "uri": self.base_url + path}
        return SimResponse.json({"data": [_pick(i, tree) for i in items[start:end]], "next_page": next_page})

    # ---- routes ----------------------------------------------------------------------------------
    def _routes(self) -> None:
        g = r"(?P<gid>\d+)"
        for method, pattern, handler in (
            ("POST", r"/-/oauth_token", self.h_oauth_token),
            ("GET", r"/users/me", self.h_me),
            ("GET", r"/users", self.h_users),
            ("GET", rf"/users/{g}", self.h_user),
            ("GET", r"/workspaces", self.h_workspaces),
            ("GET", rf"/workspaces/{g}", self.h_workspace),
            ("GET", rf"/workspaces/{g}/projects", self.h_workspace_projects),
            ("GET", rf"/workspaces/{g}/users", self.h_workspace_users),
            ("GET", r"/projects", self.h_projects),
            ("GET", rf"/projects/{g}/tasks", self.h_project_tasks),
            ("GET", rf"/sections/{g}", self.h_section),
            ("GET", rf"/sections/{g}/tasks", self.h_section_tasks),
            ("GET", rf"/tasks/{g}/subtasks", self.h_subtasks),
            ("POST", rf"/tasks/{g}/subtasks", self.h_create_subtask),
            ("GET", rf"/workspaces/{g}/workspace_memberships", self.h_memberships),
            ("POST", rf"/workspaces/{g}/addUser", self.h_add_user),
            ("POST", rf"/workspaces/{g}/removeUser", self.h_remove_user),
            ("GET", rf"/teams/{g}/users", self.h_team_users),
            ("POST", rf"/teams/{g}/addUser", self.h_team_add),
            ("POST", rf"/teams/{g}/removeUser", self.h_team_remove),
            ("GET", rf"/projects/{g}", self.h_project),
            ("GET", rf"/projects/{g}/sections", self.h_sections),
            ("GET", rf"/projects/{g}/custom_field_settings", self.h_settings),
            ("GET", rf"/custom_fields/{g}", self.h_custom_field),
            ("GET", r"/tasks", self.h_tasks),
            ("POST", r"/tasks", self.h_create_task),
            ("GET", rf"/tasks/{g}", self.h_task),
            ("PUT", rf"/tasks/{g}", self.h_update_task),
            ("DELETE", rf"/tasks/{g}", self.h_delete_task),
            ("GET", rf"/tasks/{g}/stories", self.h_stories),
            ("POST", rf"/tasks/{g}/stories", self.h_story),
            ("GET", rf"/stories/{g}", self.h_get_story),
            ("POST", rf"/tasks/{g}/addProject", self.h_add_project),
            ("POST", rf"/tasks/{g}/removeProject", self.h_remove_project),
            ("GET", rf"/workspaces/{g}/tasks/search", self.h_search),
            ("POST", rf"/sections/{g}/addTask", self.h_section_add_task),
            ("GET", r"/webhooks", self.h_webhooks),
            ("POST", r"/webhooks", self.h_create_webhook),
            ("GET", rf"/webhooks/{g}", self.h_webhook),
            ("DELETE", rf"/webhooks/{g}", self.h_delete_webhook),
        ):
            self.add_route(method, pattern, handler)

    @staticmethod
    def _data(req: SimRequest) -> dict:
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise _err(400, "data: Missing input")
        return body["data"]

    def _get(self, store: dict, kind: str, gid: str) -> dict:
        if gid not in store:
            raise _err(404, f"{kind}: Unknown object: {gid}")
        return store[gid]
