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
Event delivery is synchronous and explicit (`deliver_pending_events()`, `send_heartbeats()`).
Seeding: the `add_*` helpers, and `build_demo()` with the fixed GIDs in `DEMO`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from email.utils import formatdate
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..core import Deliverer, SimError, SimRequest, SimResponse, Simulator
from .helpers import (
    COMPACT,
    DUPLICATE_WEBHOOK,
    HANDSHAKE_FAILED,
    HELP,
    OFFSET_EXPIRED,
    PLAIN_FIELDS,
    RATE_LIMIT_MESSAGE,
    TASK_WRITABLE,
    TRUNCATED,
)
from .helpers import err as _err
from .helpers import iso as _iso
from .helpers import parse_time as _parse_time
from .helpers import passes as _passes
from .helpers import pick as _pick
from .helpers import tree as _tree
from .search import SearchMixin
from .stories import StoriesMixin


class AsanaSimulator(SearchMixin, StoriesMixin, Simulator):
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
        self.search_lag = 0.0  # how far the search index trails writes (set_search_lag)
        self.default_person: str | None = None  # who the person_* controls act as by default
        self.deleted_tasks: dict[str, dict] = {}
        self._index: dict[str, list] = {}  # task gid -> [(since, state, task)] (search.py)
        self._acting_in_ui = False
        self._routes()

    # ---- clock, ids, auth ----------------------------------------------------------------------
    def now(self) -> float:
        """The simulator's time: its clock plus the offset a test set (`set_clock_offset`)."""
        return self.clock() + self.clock_offset

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
        import re

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

    # ---- renderers -------------------------------------------------------------------------------
    def _compact(self, kind: str, gid: str | None) -> dict | None:
        if gid is None:
            return None
        source = {
            "user": self.users,
            "project": self.projects,
            "section": self.sections,
            "workspace": self.workspaces,
            "team": self.teams,
            "task": self.tasks,
        }[kind]
        obj = source.get(gid, {})
        return {"gid": gid, "resource_type": kind, "name": obj.get("name", "")}

    def _option(self, gid: str) -> dict:
        o = self.enum_options[gid]
        return {
            "gid": gid,
            "resource_type": "enum_option",
            "name": o["name"],
            "enabled": o["enabled"],
            "color": o["color"],
        }

    def render_field(self, gid: str) -> dict:
        f = self.custom_fields[gid]
        out = {
            "gid": gid,
            "resource_type": "custom_field",
            "name": f["name"],
            "type": f["type"],
            "resource_subtype": f["type"],
            "is_formula_field": f["formula"],
            "is_value_read_only": f["read_only"],
            "enabled": True,
            "description": "",
        }
        if f["type"] in ("enum", "multi_enum"):
            out["enum_options"] = [self._option(o) for o in f["options"]]
        if f["type"] == "number":
            out["precision"] = f["precision"]
        return out

    def _field_value(self, task: dict, gid: str, enabled: bool) -> dict:
        f = self.custom_fields[gid]
        value = task["custom_values"].get(gid)
        entry = {
            "gid": gid,
            "resource_type": "custom_field",
            "name": f["name"],
            "type": f["type"],
            "resource_subtype": f["type"],
            "enabled": enabled,
            "display_value": None,
        }
        kind = f["type"]
        if kind == "text":
            entry["text_value"] = value
            entry["display_value"] = value
        elif kind == "number":
            entry["number_value"] = value
            entry["display_value"] = None if value is None else f"{value:.{f['precision']}f}"
        elif kind == "enum":
            if value:  # live Asana sends "enum_value": null; the spec says not nullable
                entry["enum_value"] = self._option(value)
            entry["display_value"] = self.enum_options[value]["name"] if value else None
        elif kind == "multi_enum":
            entry["multi_enum_values"] = [self._option(o) for o in value or []]
            entry["display_value"] = ", ".join(self.enum_options[o]["name"] for o in value or []) or None
        elif kind == "date":
            # Asana sends date_time: null for date-only values; the spec does not allow null there, so
            # the sandbox leaves it out (like the other nulls the spec forgets; see SPEC_GAPS.md).
            entry["date_value"] = {"date": value} if value else None
            entry["display_value"] = value
        elif kind == "people":
            entry["people_value"] = [self._compact("user", u) for u in value or []]
            entry["display_value"] = ", ".join(self.users[u]["name"] for u in value or []) or None
        return entry

    def _task_fields(self, task: dict) -> dict[str, bool]:
        """Field GID -> enabled: the projects' fields, plus values left behind by a departed field (§5)."""
        out: dict[str, bool] = {}
        for project in task["projects"]:
            for setting in self.projects[project]["settings"]:
                out[setting["field"]] = True
        for gid, value in task["custom_values"].items():
            if gid not in out and value not in (None, []):
                out[gid] = False
        return out

    def render_task(self, gid: str, t: dict | None = None) -> dict:
        """The complete task record ([OAS] TaskResponse); `t` renders a past version (search index)."""
        t = self.tasks[gid] if t is None else t
        user = lambda g: self._compact("user", g)  # noqa: E731
        subtasks = [g for g, sub in self.tasks.items() if sub.get("parent") == gid]
        out = {
            "gid": gid,
            "resource_type": "task",
            "name": t["name"],
            "resource_subtype": t["resource_subtype"],
            "completed": t["completed"],
            "completed_at": t["completed_at"],
            "created_at": t["created_at"],
            "modified_at": t["modified_at"],
            "due_on": t["due_on"],
            "due_at": t.get("due_at"),
            "start_on": t.get("start_on"),
            "notes": t["notes"],
            "html_notes": f"<body>{escape(t['notes'])}</body>",
            "liked": False,
            "likes": [],
            "num_likes": 0,
            "hearted": False,
            "hearts": [],
            "num_hearts": 0,
            "num_subtasks": len(subtasks),
            "assignee": user(t["assignee"]),
            "assignee_status": "inbox",
            "workspace": self._compact("workspace", t["workspace"]),
            "permalink_url": f"https://app.asana.com/0/0/{gid}",
            "projects": [self._compact("project", p) for p in t["projects"]],
            "memberships": [
                {"project": self._compact("project", p), "section": self._compact("section", s)}
                for p, s in t["sections"].items()
            ],
            "followers": [user(u) for u in t.get("followers") or []],
            "tags": [{"gid": g, "resource_type": "tag", "name": g} for g in t.get("tags") or []],
            "dependencies": [],
            "dependents": [],
            "custom_fields": [self._field_value(t, f, en) for f, en in self._task_fields(t).items()],
        }
        # Live Asana sends null for an unset reference; the spec says not nullable, so the sandbox
        # leaves these out (see SPEC_GAPS.md).
        for key, value in (
            ("created_by", user(t.get("created_by"))),
            ("completed_by", user(t.get("completed_by"))),
            ("parent", self._parent_compact(t.get("parent"))),
        ):
            if value is not None:
                out[key] = value
        if t.get("external"):
            out["external"] = dict(t["external"])
        if t["resource_subtype"] == "approval":
            out["approval_status"] = t["approval_status"]
        if out["assignee"] is None:
            del out["assignee"]
        for key in ("due_at", "start_on"):
            if out[key] is None:
                del out[key]
        return out

    def _parent_compact(self, gid: str | None) -> dict | None:
        if gid is None:
            return None
        parent = self.tasks.get(gid) or self.deleted_tasks.get(gid) or {}
        return {
            "gid": gid,
            "resource_type": "task",
            "name": parent.get("name", ""),
            "resource_subtype": parent.get("resource_subtype", "default_task"),
        }

    def _field_compact(self, gid: str) -> dict:
        f = self.custom_fields[gid]
        return {
            "gid": gid,
            "resource_type": "custom_field",
            "name": f["name"],
            "type": f["type"],
            "resource_subtype": f["type"],
        }

    def render_webhook(self, gid: str) -> dict:
        w = self.webhooks[gid]
        resource = self.projects.get(w["resource"]) or self.tasks.get(w["resource"]) or {}
        keys = (
            "active",
            "target",
            "created_at",
            "last_success_at",
            "last_failure_at",
            "last_failure_content",
            "delivery_retry_count",
            "next_attempt_after",
            "failure_deletion_timestamp",
        )
        return {
            "gid": gid,
            "resource_type": "webhook",
            "filters": w["filters"],
            "resource": {
                "gid": w["resource"],
                "resource_type": w["resource_type"],
                "name": resource.get("name", ""),
            },
            # The spec's own example shows these as null, but its schema says not nullable: a null
            # is omitted (spec gap, see the report), which clients must read as "never happened".
            **{k: w[k] for k in keys if w[k] is not None},
        }

    def render_user(self, gid: str) -> dict:
        u = self.users[gid]
        workspaces = [ws for (ws, user), m in self.memberships.items() if user == gid and m["is_active"]]
        return {
            "gid": gid,
            "resource_type": "user",
            "name": u["name"],
            "email": u["email"],
            "photo": None,
            "workspaces": [self._compact("workspace", w) for w in workspaces],
        }

    def render_membership(self, workspace: str, user: str) -> dict:
        m = self.memberships[(workspace, user)]
        return {
            "gid": m["gid"],
            "resource_type": "workspace_membership",
            "user": self._compact("user", user),
            "workspace": self._compact("workspace", workspace),
            "created_at": m["created_at"],
            **{k: m[k] for k in ("is_active", "is_admin", "is_guest", "is_view_only")},
        }

    # ---- routes ----------------------------------------------------------------------------------
    def _routes(self) -> None:
        g = r"(?P<gid>\d+)"
        for method, pattern, handler in (
            ("POST", r"/-/oauth_token", self.h_oauth_token),
            ("GET", r"/users/me", self.h_me),
            ("GET", r"/users", self.h_users),
            ("GET", rf"/users/{g}", self.h_user),
            ("GET", rf"/workspaces/{g}", self.h_workspace),
            ("GET", rf"/workspaces/{g}/workspace_memberships", self.h_memberships),
            ("POST", rf"/workspaces/{g}/addUser", self.h_add_user),
            ("POST", rf"/workspaces/{g}/removeUser", self.h_remove_user),
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

    # ---- OAuth (§1.2) ----------------------------------------------------------------------------
    def h_oauth_token(self, req: SimRequest) -> SimResponse:
        form = dict(parse_qsl(req.body.decode()))

        def refuse(status: int, error: str, text: str) -> SimResponse:
            return SimResponse.json({"error": error, "error_description": text}, status)

        if self.oauth_clients.get(form.get("client_id", "")) != form.get("client_secret") or not form.get(
            "client_id"
        ):
            return refuse(401, "invalid_client", "The client credentials are invalid.")
        if form.get("grant_type") == "refresh_token":
            grant = self.refresh_tokens.get(form.get("refresh_token", ""))
            if not grant or grant["client"] != form["client_id"]:
                return refuse(400, "invalid_grant", "The refresh token is invalid or expired.")
            refresh = None
            if self.rotate_refresh_tokens:
                del self.refresh_tokens[form["refresh_token"]]
                refresh = self._new_refresh(grant["user"], grant["client"])
        elif form.get("grant_type") == "authorization_code":
            grant = self.auth_codes.pop(form.get("code", ""), None)
            if not grant:
                return refuse(400, "invalid_grant", "The authorization code is invalid.")
            refresh = self._new_refresh(grant["user"], grant["client"])
        else:
            return refuse(
                400, "unsupported_grant_type", "grant_type must be refresh_token or authorization_code"
            )
        access = self._new_access(grant["user"], grant["client"])
        user = self.users[grant["user"]]
        body = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
            "data": {
                "id": int(grant["user"]),
                "gid": grant["user"],
                "name": user["name"],
                "email": user["email"],
            },
        }
        if refresh:
            body["refresh_token"] = refresh
        return SimResponse.json(body)

    # ---- users, workspaces, teams (§7) ------------------------------------------------------------
    def h_me(self, req: SimRequest) -> SimResponse:
        return self._one(req, self.render_user(self._user_of(req)))

    def h_user(self, req: SimRequest, gid: str) -> SimResponse:
        self._user_of(req)
        self._get(self.users, "user", gid)
        return self._one(req, self.render_user(gid))

    def h_users(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        workspace = req.arg("workspace")
        if not workspace:
            raise _err(400, "workspace: Missing input")
        self._require_member(workspace, me)
        users = sorted(u for (ws, u) in self.memberships if ws == workspace)
        return self._list(req, [self.render_user(u) for u in users], "user")

    def h_workspace(self, req: SimRequest, gid: str) -> SimResponse:
        self._require_member(gid, self._user_of(req))
        ws = self._get(self.workspaces, "workspace", gid)
        return self._one(
            req,
            {
                "gid": gid,
                "resource_type": "workspace",
                "name": ws["name"],
                "is_organization": ws["is_organization"],
                "email_domains": ws["email_domains"],
            },
        )

    def h_memberships(self, req: SimRequest, gid: str) -> SimResponse:
        self._require_member(gid, self._user_of(req))
        user = req.arg("user")
        if user and "@" in user:
            user = self._user_by_email(user)
        keys = sorted(k for k in self.memberships if k[0] == gid and (user is None or k[1] == user))
        return self._list(req, [self.render_membership(*k) for k in keys], "workspace_membership")

    def _user_by_email(self, email: str) -> str | None:
        return next((g for g, u in self.users.items() if u["email"].lower() == email.lower()), None)

    def h_add_user(self, req: SimRequest, gid: str) -> SimResponse:
        self._require_member(gid, self._user_of(req))
        ws = self._get(self.workspaces, "workspace", gid)
        ref = str(self._data(req).get("user") or "")
        user = self._user_by_email(ref) if "@" in ref else ref
        if "@" in ref and user is None:
            user = self.add_user(ref.split("@")[0].replace(".", " ").title(), ref)
        if user not in self.users:
            raise _err(404, f"user: Unknown object: {ref}")
        existing = self.memberships.get((gid, user))
        if existing is None or not existing["is_active"]:
            domain = self.users[user]["email"].rsplit("@", 1)[-1].lower()
            guest = bool(ws["is_organization"] and domain not in ws["email_domains"])
            self._join(gid, user, is_guest=guest)
        return self._one(req, self.render_user(user))

    def h_remove_user(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        if not self._require_member(gid, me)["is_admin"]:
            raise _err(403, "The user making this call must be an admin in the workspace.")
        ref = str(self._data(req).get("user") or "")
        user = self._user_by_email(ref) if "@" in ref else ref
        if (gid, user) not in self.memberships:
            raise _err(404, f"user: Unknown object: {ref}")
        del self.memberships[(gid, user)]
        for team in self.teams.values():
            if team["workspace"] == gid:
                team["members"].discard(user)
        return SimResponse.json({"data": {}})

    def _team_call(self, req: SimRequest, gid: str) -> tuple[dict, str]:
        me = self._user_of(req)
        team = self._get(self.teams, "team", gid)
        if me not in team["members"]:
            raise _err(403, "The user making this call must be a member of the team.")
        ref = str(self._data(req).get("user") or "")
        user = self._user_by_email(ref) if "@" in ref else ref
        if user not in self.users or (team["workspace"], user) not in self.memberships:
            raise _err(400, "user: The user must exist in the same organization as the team.")
        return team, user

    def h_team_add(self, req: SimRequest, gid: str) -> SimResponse:
        team, user = self._team_call(req, gid)
        team["members"].add(user)
        guest = self.memberships[(team["workspace"], user)]["is_guest"]
        return self._one(
            req,
            {
                "gid": self.new_gid(),
                "resource_type": "team_membership",
                "user": self._compact("user", user),
                "team": self._compact("team", gid),
                "is_guest": guest,
                "is_limited_access": False,
                "is_admin": False,
            },
            200,
        )

    def h_team_remove(self, req: SimRequest, gid: str) -> SimResponse:
        team, user = self._team_call(req, gid)
        team["members"].discard(user)
        return SimResponse.json({"data": {}})

    # ---- projects, sections, custom fields (§5) ---------------------------------------------------
    def _readable_project(self, req: SimRequest, gid: str) -> dict:
        me = self._user_of(req)
        project = self._get(self.projects, "project", gid)
        self._require_member(project["workspace"], me)
        return project

    def h_project(self, req: SimRequest, gid: str) -> SimResponse:
        p = self._readable_project(req, gid)
        return self._one(
            req,
            {
                "gid": gid,
                "resource_type": "project",
                "name": p["name"],
                "archived": p["archived"],
                "workspace": self._compact("workspace", p["workspace"]),
            },
        )

    def h_sections(self, req: SimRequest, gid: str) -> SimResponse:
        p = self._readable_project(req, gid)
        items = [
            {
                **self._compact("section", s),
                "project": self._compact("project", gid),
                "created_at": self.sections[s]["created_at"],
            }
            for s in p["sections"]
        ]
        return self._list(req, items, "section")

    def h_settings(self, req: SimRequest, gid: str) -> SimResponse:
        p = self._readable_project(req, gid)
        items = [
            {
                "gid": s["gid"],
                "resource_type": "custom_field_setting",
                "is_important": s["is_important"],
                "custom_field": self.render_field(s["field"]),
                "parent": self._compact("project", gid),
                "project": self._compact("project", gid),
            }
            for s in p["settings"]
        ]
        return self._list(req, items, "custom_field_setting")

    def h_custom_field(self, req: SimRequest, gid: str) -> SimResponse:
        self._user_of(req)
        self._get(self.custom_fields, "custom_field", gid)
        return self._one(req, self.render_field(gid))

    def _coerce_value(self, field_gid: str, value: Any, enabled: bool) -> Any:
        """Asana's rules for a custom field write (§4.3, §5); the sandbox is strict where Asana is vague."""
        f = self.custom_fields.get(field_gid)
        if f is None:
            raise _err(400, f"custom_fields: Unknown custom field: {field_gid}")
        if f["formula"] or f["read_only"]:
            raise _err(403, f"custom_fields: {f['name']} is read-only and cannot be changed.")
        if value is None:
            return None
        if not enabled:
            raise _err(
                400,
                f"custom_fields: {f['name']} is not on any of the task's projects; its value "
                "can only be cleared.",
            )
        kind = f["type"]
        if kind == "text":
            if not isinstance(value, str) or len(value) > 1024:
                raise _err(400, f"custom_fields: {f['name']} must be a string of at most 1024 characters")
            return value
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _err(400, f"custom_fields: {f['name']} must be a number")
            q = Decimal(str(value)).quantize(Decimal(1).scaleb(-f["precision"]), rounding=ROUND_HALF_UP)
            return float(q) if f["precision"] else int(q)
        if kind in ("enum", "multi_enum"):
            gids = [value] if kind == "enum" else value
            if not isinstance(gids, list) or not all(isinstance(g, str) for g in gids):
                raise _err(400, f"custom_fields: {f['name']} takes enum option GIDs")
            for option in gids:
                if option not in f["options"]:
                    raise _err(400, f"custom_fields: {option} is not an enum option of {f['name']}")
                if not self.enum_options[option]["enabled"]:
                    raise _err(400, f"custom_fields: enum option {option} is disabled")
            return gids[0] if kind == "enum" else list(dict.fromkeys(gids))
        if kind == "date":
            if not isinstance(value, dict) or not isinstance(value.get("date"), str):
                raise _err(400, f'custom_fields: {f["name"]} takes {{"date": "YYYY-MM-DD"}}')
            try:
                return datetime.strptime(value["date"], "%Y-%m-%d").date().isoformat()
            except ValueError:
                raise _err(400, f"custom_fields: {value['date']} is not a valid date") from None
        if kind == "people":
            if not isinstance(value, list) or any(u not in self.users for u in value):
                raise _err(400, f"custom_fields: {f['name']} takes a list of user GIDs")
            return list(dict.fromkeys(value))
        raise _err(400, f"custom_fields: {kind} fields are not supported by the sandbox")

    # ---- tasks (§4) ------------------------------------------------------------------------------
    def h_tasks(self, req: SimRequest) -> SimResponse:
        project = req.arg("project")
        if not project:
            raise _err(400, "project: Missing input")
        self._readable_project(req, project)
        since = req.arg("modified_since")
        cutoff = _parse_time(since) if since else None
        items = [
            self.render_task(g)
            for g, t in sorted(self.tasks.items())
            if project in t["projects"] and (cutoff is None or _parse_time(t["modified_at"]) >= cutoff)
        ]
        return self._list(req, items, "task")

    def h_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        return self._one(req, self.render_task(gid))

    def h_create_task(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        data = self._data(req)
        projects = [str(p) for p in data.get("projects") or []]
        sections: dict[str, str | None] = {p: None for p in projects}
        for m in data.get("memberships") or []:
            project, section = str(m.get("project") or ""), m.get("section")
            if section and self.sections.get(section, {}).get("project") != project:
                raise _err(400, f"memberships: section {section} is not in project {project}")
            sections[project] = section
        if not sections and not data.get("workspace"):
            raise _err(400, "workspace: Missing input")
        for project in sections:
            self._readable_project(req, project)
        unknown = (
            set(data)
            - TASK_WRITABLE
            - {"projects", "memberships", "workspace", "followers", "tags", "parent"}
        )
        if unknown:
            raise _err(400, f"{sorted(unknown)[0]}: Unknown field")
        workspace = self.projects[projects[0]]["workspace"] if sections else str(data["workspace"])
        gid = self.new_gid()
        task = self._blank_task(workspace, data.get("name") or "", sections, created_by=me)
        try:
            self.tasks[gid] = task
            self._apply(task, {k: v for k, v in data.items() if k in TASK_WRITABLE}, me, gid, emit=False)
        except SimError:
            del self.tasks[gid]
            raise
        for project in task["projects"]:
            self._emit(gid, me, "added", parent=self._compact("project", project))
        return self._one(req, self.render_task(gid), 201)

    def _default_section(self, project: str) -> str:
        """Every task in a project sits in a section; projects without one get an untitled one."""
        if not self.projects[project]["sections"]:
            self.add_section(project, "Untitled section")
        return self.projects[project]["sections"][0]

    def _blank_task(
        self,
        workspace: str,
        name: str,
        sections: dict[str, str | None],
        *,
        created_by: str | None = None,
        parent: str | None = None,
    ) -> dict:
        sections = {p: s or self._default_section(p) for p, s in sections.items()}
        now = self.now_iso()
        return {
            "name": name,
            "notes": "",
            "resource_subtype": "default_task",
            "approval_status": None,
            "completed": False,
            "completed_at": None,
            "created_at": now,
            "modified_at": now,
            "due_on": None,
            "assignee": None,
            "created_by": created_by,
            "completed_by": None,
            "parent": parent,
            "followers": [created_by] if created_by else [],
            "tags": [],
            "external": None,
            "workspace": workspace,
            "projects": list(sections),
            "sections": dict(sections),
            "custom_values": {},
        }

    def _apply(self, task: dict, data: dict, user: str | None, gid: str, emit: bool = True) -> list[str]:
        """Apply writable fields; return the changed field names (events + modified_at)."""
        changed: list[str] = []
        before = {k: task.get(k) for k in PLAIN_FIELDS}
        enabled = self._task_fields(task)
        new_values = {}
        for field_gid, value in (data.get("custom_fields") or {}).items():
            new_values[field_gid] = self._coerce_value(field_gid, value, enabled.get(field_gid, False))
        if data.get("assignee") not in (None, "me") and data["assignee"] not in self.users:
            raise _err(400, f"assignee: Unknown object: {data['assignee']}")
        for key in ("name", "notes", "due_on", "resource_subtype"):
            if key in data and task[key] != data[key]:
                task[key] = data[key]
                changed.append(key)
        if "assignee" in data:
            assignee = user if data["assignee"] == "me" else data["assignee"]
            if task["assignee"] != assignee:
                task["assignee"], changed = assignee, [*changed, "assignee"]
        if task["resource_subtype"] == "approval" and task["approval_status"] is None:
            task["approval_status"] = "pending"
        status = data.get("approval_status")
        if (
            status is not None
            and task["resource_subtype"] == "approval"
            and status != task["approval_status"]
        ):
            task["approval_status"] = status
            changed.append("approval_status")
            data = {**data, "completed": status != "pending"}
        if "completed" in data and bool(data["completed"]) != task["completed"]:
            task["completed"] = bool(data["completed"])
            task["completed_at"] = self.now_iso() if task["completed"] else None
            task["completed_by"] = user if task["completed"] else None
            changed.append("completed")
            if task["resource_subtype"] == "approval" and status is None:
                # completed=true means approved; false means pending again (§4.4).
                task["approval_status"] = "approved" if task["completed"] else "pending"
        old_values = {g: task["custom_values"].get(g) for g in new_values}
        changed_fields = [g for g, v in new_values.items() if old_values[g] != v]
        task["custom_values"].update(new_values)
        if changed or changed_fields:
            task["modified_at"] = self.now_iso()
        if emit:
            for name in changed:
                self._emit(gid, user, "changed", change={"field": name, "action": "changed"})
            for field_gid in changed_fields:
                self._emit(
                    gid,
                    user,
                    "changed",
                    change={
                        "field": "custom_fields",
                        "action": "changed",
                        "new_value": {"gid": field_gid, "resource_type": "custom_field"},
                    },
                )
            after = {k: task.get(k) for k in PLAIN_FIELDS}
            self._change_stories(
                gid, user, before, after, {g: (old_values[g], new_values[g]) for g in changed_fields}
            )
        return changed + ["custom_fields"] * bool(changed_fields)

    def h_update_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        data = self._data(req)
        unknown = set(data) - TASK_WRITABLE
        if unknown:
            raise _err(400, f"{sorted(unknown)[0]}: Cannot write this property")
        snapshot = json.loads(json.dumps(task))
        try:
            self._apply(task, data, me, gid)
        except SimError:
            task.clear()
            task.update(snapshot)
            raise
        return self._one(req, self.render_task(gid))

    def h_add_project(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        data = self._data(req)
        project, section = str(data.get("project") or ""), data.get("section")
        if not project:
            raise _err(400, "project: Missing input")
        self._readable_project(req, project)
        if section and self.sections.get(section, {}).get("project") != project:
            raise _err(400, f"section: {section} is not in project {project}")
        self._add_to_project(gid, project, section, me)
        return SimResponse.json({"data": {}})

    def h_remove_project(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        project = str(self._data(req).get("project") or "")
        if not project:
            raise _err(400, "project: Missing input")
        self._readable_project(req, project)
        if project in task["projects"]:
            self._remove_from_project(gid, project, me)
        return SimResponse.json({"data": {}})

    def _add_to_project(self, gid: str, project: str, section: str | None, user: str | None) -> None:
        """Moving between containers does not change modified_at (§4.2); it leaves stories."""
        task = self.tasks[gid]
        new = project not in task["projects"]
        old_section = task["sections"].get(project)
        if new:
            task["projects"].append(project)
        task["sections"][project] = section or old_section or self._default_section(project)
        if new:
            self.add_story(
                gid,
                user,
                "added_to_project",
                f"added this task to {self.projects[project]['name']}",
                project=self._compact("project", project),
            )
            self._emit(gid, user, "added", parent=self._compact("project", project))
        elif old_section != task["sections"][project]:
            self._section_moved(gid, user, old_section, task["sections"][project])

    def _remove_from_project(self, gid: str, project: str, user: str | None) -> None:
        task = self.tasks[gid]
        task["projects"].remove(project)
        task["sections"].pop(project, None)
        self.add_story(
            gid,
            user,
            "removed_from_project",
            f"removed this task from {self.projects[project]['name']}",
            project=self._compact("project", project),
        )
        # Watchers of the project it left still hear of it (the event names the project as parent).
        self._emit(gid, user, "removed", parent=self._compact("project", project), also=(project,))

    def _section_moved(self, gid: str, user: str | None, old: str | None, new: str) -> None:
        self.add_story(
            gid,
            user,
            "section_changed",
            f"moved this task to {self.sections[new]['name']}",
            **({"old_section": self._compact("section", old)} if old else {}),
            new_section=self._compact("section", new),
        )
        self._emit(gid, user, "added", parent=self._compact("section", new))

    def h_delete_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        task = self._get(self.tasks, "task", gid)
        self._require_member(task["workspace"], me)
        self._delete_task(gid, me)
        return SimResponse.json({"data": {}})

    def h_section_add_task(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        section = self._get(self.sections, "section", gid)
        task_gid = str(self._data(req).get("task") or "")
        task = self._get(self.tasks, "task", task_gid)
        if section["project"] not in task["projects"]:
            raise _err(400, "task: The task is not in the section's project.")
        old = task["sections"].get(section["project"])
        task["sections"][section["project"]] = gid  # leaves the project's other sections (§4.1)
        if old != gid:
            self._section_moved(task_gid, me, old, gid)
        return SimResponse.json({"data": {}})

    # ---- webhooks (§6) ---------------------------------------------------------------------------
    def h_webhooks(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        workspace = req.arg("workspace")
        if not workspace:
            raise _err(400, "workspace: Missing input")
        resource = req.arg("resource")
        items = [
            self.render_webhook(g)
            for g, w in sorted(self.webhooks.items())
            if w["owner"] == me
            and w["workspace"] == workspace
            and (resource is None or w["resource"] == resource)
        ]
        return self._list(req, items, "webhook")

    def h_webhook(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        if self.webhooks.get(gid, {}).get("owner") != me:
            raise _err(404, f"webhook: Unknown object: {gid}")
        return self._one(req, self.render_webhook(gid))

    def h_delete_webhook(self, req: SimRequest, gid: str) -> SimResponse:
        me = self._user_of(req)
        if self.webhooks.get(gid, {}).get("owner") != me:
            raise _err(404, f"webhook: Unknown object: {gid}")
        del self.webhooks[gid]
        return SimResponse.json({"data": {}})

    def h_create_webhook(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        data = self._data(req)
        resource, target = str(data.get("resource") or ""), str(data.get("target") or "")
        if not resource:
            raise _err(400, "resource: Missing input")
        if not target:
            raise _err(400, "target: Missing input")
        if resource in self.projects:
            kind, workspace = "project", self.projects[resource]["workspace"]
        elif resource in self.tasks:
            kind, workspace = "task", self.tasks[resource]["workspace"]
        else:
            raise _err(404, f"resource: Unknown object: {resource}")
        self._require_member(workspace, me)
        host = (urlsplit(target).hostname or "").lower()
        if (
            not host
            or (host == "localhost" and not self.allow_localhost)
            or urlsplit(target).scheme not in ("http", "https")
        ):
            raise _err(403, "Invalid webhook target: the hostname is not allowed.")
        if any(
            w["resource"] == resource and w["target"] == target and w["owner"] == me
            for w in self.webhooks.values()
        ):
            raise _err(403, DUPLICATE_WEBHOOK)
        # The handshake happens while this request is open (§6.2).
        secret = secrets.token_hex(32)
        status, headers, _body = self.deliver(target, {"X-Hook-Secret": secret}, b"")
        echoed = next((v for k, v in (headers or {}).items() if k.lower() == "x-hook-secret"), None)
        self.deliveries.append(("handshake", status, b""))
        if status not in (200, 204) or echoed != secret:
            raise _err(400, HANDSHAKE_FAILED)
        gid = self.new_gid()
        self.webhooks[gid] = {
            "resource": resource,
            "resource_type": kind,
            "workspace": workspace,
            "target": target,
            "owner": me,
            "filters": [dict(f) for f in data.get("filters") or []],
            "secret": secret,
            "active": False,
            "created_at": self.now_iso(),
            "last_success_at": None,
            "last_failure_at": None,
            "last_failure_content": None,
            "delivery_retry_count": 0,
            "next_attempt_after": None,
            "failure_deletion_timestamp": None,
            "queue": [],
            "heartbeat_due": True,
            "first_failure": None,
        }
        return self._one(req, self.render_webhook(gid), 201, extra={"X-Hook-Secret": secret})

    def _emit(
        self,
        gid: str,
        user: str | None,
        action: str,
        *,
        resource_type: str = "task",
        subtype: str | None = None,
        parent: dict | None = None,
        change: dict | None = None,
        task_gid: str | None = None,
        also: tuple[str, ...] = (),
    ) -> None:
        """Queue one event on every webhook that watches it and whose filters let it through."""
        task_gid = task_gid or gid
        task = self.tasks.get(task_gid, {})
        subtype = subtype or task.get("resource_subtype")
        event = {
            "user": {"gid": user, "resource_type": "user"} if user else None,
            "created_at": self.now_iso(),
            "action": action,
            "resource": {"gid": gid, "resource_type": resource_type, "resource_subtype": subtype},
            "parent": parent,
        }
        if change:
            event["change"] = change
        for webhook in self.webhooks.values():
            watched = (task_gid, *task.get("projects", []), *also)
            if webhook["resource"] not in watched:
                continue
            if webhook["filters"] and not any(_passes(f, event) for f in webhook["filters"]):
                continue
            webhook["queue"].append(event)

    def _sign(self, secret: str, body: bytes) -> str:
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def _deliver_to(self, gid: str, events: list[dict]) -> int:
        webhook = self.webhooks[gid]
        body = json.dumps({"events": events}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hook-Signature": self._sign(webhook["secret"], body),
        }
        try:
            status, _headers, reply = self.deliver(webhook["target"], headers, body)
        except Exception as exc:  # noqa: BLE001 - a broken target is a failed delivery, not a sandbox crash
            status, reply = 0, str(exc).encode()
        self.deliveries.append((gid, status, body))
        now = self.now()
        if 200 <= status < 300:
            webhook.update(
                active=True,
                last_success_at=self.now_iso(),
                delivery_retry_count=0,
                next_attempt_after=None,
                failure_deletion_timestamp=None,
                first_failure=None,
            )
            return status
        webhook["first_failure"] = webhook["first_failure"] or now
        webhook["delivery_retry_count"] += 1
        webhook["last_failure_at"] = self.now_iso()
        webhook["last_failure_content"] = f"{status} {reply[:200].decode(errors='replace')}".strip()
        webhook["next_attempt_after"] = _iso(now + 60 * 2 ** webhook["delivery_retry_count"])
        webhook["failure_deletion_timestamp"] = _iso(webhook["first_failure"] + 24 * 3600)
        if (
            webhook["delivery_retry_count"] >= self.max_delivery_failures
            or now >= webhook["first_failure"] + 86400
        ):
            del self.webhooks[gid]  # Asana deletes it without telling anyone (§6.5, §8)
        return status

    def deliver_pending_events(self) -> list[tuple[str, int]]:
        """Deliver each webhook's queued events (and the first heartbeat) now; failures stay queued."""
        results = []
        with self.lock:
            for gid in list(self.webhooks):
                webhook = self.webhooks[gid]
                if webhook["heartbeat_due"]:
                    webhook["heartbeat_due"] = False
                    results.append((gid, self._deliver_to(gid, [])))
                if gid in self.webhooks and self.webhooks[gid]["queue"]:
                    events = list(webhook["queue"])
                    status = self._deliver_to(gid, events)
                    if 200 <= status < 300:
                        webhook["queue"] = webhook["queue"][len(events) :]
                    results.append((gid, status))
        return results

    def send_heartbeats(self) -> list[tuple[str, int]]:
        """The empty, signed `{"events": []}` Asana sends every eight hours (§6.5)."""
        with self.lock:
            return [(gid, self._deliver_to(gid, [])) for gid in list(self.webhooks)]

    def delete_webhook_silently(self, gid: str) -> None:
        with self.lock:
            self.webhooks.pop(gid, None)

    # ---- seeding helpers -------------------------------------------------------------------------
    def add_workspace(
        self,
        name: str,
        *,
        gid: str | None = None,
        is_organization: bool = True,
        email_domains: tuple[str, ...] = ("demo.example",),
        premium: bool = True,
    ) -> str:
        gid = gid or self.new_gid()
        self.workspaces[gid] = {
            "premium": premium,
            "name": name,
            "is_organization": is_organization,
            "email_domains": [d.lower() for d in email_domains],
        }
        return gid

    def add_user(
        self,
        name: str,
        email: str,
        *,
        workspace: str | None = None,
        gid: str | None = None,
        is_admin: bool = False,
        is_guest: bool = False,
        is_active: bool = True,
    ) -> str:
        gid = gid or self.new_gid()
        self.users[gid] = {"name": name, "email": email}
        if workspace:
            self._join(workspace, gid, is_admin=is_admin, is_guest=is_guest, is_active=is_active)
        return gid

    def _join(
        self,
        workspace: str,
        user: str,
        *,
        is_admin: bool = False,
        is_guest: bool = False,
        is_active: bool = True,
    ) -> None:
        self.memberships[(workspace, user)] = {
            "gid": self.new_gid(),
            "is_active": is_active,
            "is_admin": is_admin,
            "is_guest": is_guest,
            "is_view_only": False,
            "created_at": self.now_iso(),
        }

    def add_pat(self, user: str, token: str | None = None) -> str:
        token = token or f"2/{user}/{self.new_gid()}:{secrets.token_hex(16)}"
        self.tokens[token] = {"user": user, "kind": "pat", "expires_at": None, "client": None}
        return token

    def add_oauth_client(self, client_id: str, client_secret: str) -> None:
        self.oauth_clients[client_id] = client_secret

    def _new_access(self, user: str, client: str) -> str:
        token = f"oauth-access-{secrets.token_hex(16)}"
        self.tokens[token] = {
            "user": user,
            "kind": "oauth",
            "client": client,
            "expires_at": self.now() + self.access_token_ttl,
        }
        return token

    def _new_refresh(self, user: str, client: str) -> str:
        token = f"oauth-refresh-{secrets.token_hex(16)}"
        self.refresh_tokens[token] = {"user": user, "client": client}
        return token

    def issue_oauth_tokens(self, user: str, client_id: str) -> tuple[str, str]:
        """(access token, refresh token) as if the user had just authorised the app."""
        return self._new_access(user, client_id), self._new_refresh(user, client_id)

    def issue_auth_code(self, user: str, client_id: str) -> str:
        code = secrets.token_hex(8)
        self.auth_codes[code] = {"user": user, "client": client_id}
        return code

    def expire_access_tokens(self) -> None:
        for info in self.tokens.values():
            if info["kind"] == "oauth":
                info["expires_at"] = self.now() - 1

    def revoke_token(self, token: str) -> None:
        self.tokens.pop(token, None)
        self.refresh_tokens.pop(token, None)

    def expire_offsets(self) -> None:
        self.offsets.clear()

    def add_team(
        self, workspace: str, name: str, members: tuple[str, ...] = (), *, gid: str | None = None
    ) -> str:
        gid = gid or self.new_gid()
        self.teams[gid] = {"name": name, "workspace": workspace, "members": set(members)}
        return gid

    def add_project(self, workspace: str, name: str, *, gid: str | None = None) -> str:
        gid = gid or self.new_gid()
        self.projects[gid] = {
            "name": name,
            "workspace": workspace,
            "archived": False,
            "sections": [],
            "settings": [],
        }
        return gid

    def add_section(self, project: str, name: str, *, gid: str | None = None) -> str:
        gid = gid or self.new_gid()
        self.sections[gid] = {"name": name, "project": project, "created_at": self.now_iso()}
        self.projects[project]["sections"].append(gid)
        return gid

    def add_custom_field(
        self,
        name: str,
        type: str,
        *,
        gid: str | None = None,
        precision: int = 0,
        options: list[tuple[str, str, bool]] | list[str] = (),
        formula: bool = False,
        read_only: bool = False,
        projects: tuple[str, ...] = (),
    ) -> str:
        """`options`: names, or (gid, name, enabled) triples for fixed GIDs."""
        gid = gid or self.new_gid()
        self.custom_fields[gid] = {
            "name": name,
            "type": type,
            "precision": precision,
            "options": [],
            "formula": formula,
            "read_only": read_only,
        }
        for option in options:
            o_gid, o_name, enabled = option if isinstance(option, tuple) else (self.new_gid(), option, True)
            self.add_enum_option(gid, o_name, gid=o_gid, enabled=enabled)
        for project in projects:
            self.add_field_to_project(project, gid)
        return gid

    def add_enum_option(self, field: str, name: str, *, gid: str | None = None, enabled: bool = True) -> str:
        gid = gid or self.new_gid()
        self.enum_options[gid] = {"name": name, "enabled": enabled, "color": "none", "field": field}
        self.custom_fields[field]["options"].append(gid)
        return gid

    def disable_option(self, option: str) -> None:
        self.enum_options[option]["enabled"] = False

    def add_field_to_project(self, project: str, field: str, *, is_important: bool = False) -> None:
        settings = self.projects[project]["settings"]
        if all(s["field"] != field for s in settings):
            settings.append({"gid": self.new_gid(), "field": field, "is_important": is_important})

    def remove_field_from_project(self, project: str, field: str) -> None:
        """Values stay on the tasks but become disabled (§5 "Enabled and disabled values")."""
        self.projects[project]["settings"] = [
            s for s in self.projects[project]["settings"] if s["field"] != field
        ]

    def rename_field(self, field: str, name: str) -> None:
        self.custom_fields[field]["name"] = name

    def change_field_type(self, field: str, new_type: str, *, precision: int = 0) -> None:
        """Drift helper: the API forbids type changes, but a field can be deleted and re-created in the UI."""
        self.custom_fields[field].update(type=new_type, precision=precision)

    def add_task(
        self,
        project: str,
        name: str,
        *,
        section: str | None = None,
        approval: bool = False,
        custom_fields: dict[str, Any] | None = None,
        gid: str | None = None,
        user: str | None = None,
    ) -> str:
        """A task as if a person made it in the UI (values in wire shape; no rate limit, no contract)."""
        gid = gid or self.new_gid()
        with self.lock:
            self.tasks[gid] = self._blank_task(
                self.projects[project]["workspace"], name, {project: section}, created_by=user
            )
            data = {
                "custom_fields": custom_fields or {},
                **({"resource_subtype": "approval"} if approval else {}),
            }
            self._apply(self.tasks[gid], data, user, gid, emit=False)
            self._emit(gid, user, "added", parent=self._compact("project", project))
        return gid

    def ui_update_task(self, gid: str, user: str | None = None, **changes: Any) -> list[str]:
        """A person edits the task in Asana (events are attributed to `user`, None for system events)."""
        with self.lock:
            return self._apply(self.tasks[gid], changes, user, gid)

    def set_approval_status(self, gid: str, status: str, user: str | None = None) -> None:
        self.ui_update_task(gid, user, approval_status=status)

    def task_values(self, gid: str) -> dict[str, Any]:
        return dict(self.tasks[gid]["custom_values"])
