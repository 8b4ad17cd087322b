"""The simulator: its state, its routes, and what every request goes through.

Routes, relative to the instance URL it is built with (e.g. https://erp.sandbox.test/ERP):
    GET  /entity                                   build + endpoint list (anonymous)
    POST /identity/connect/token                   OAuth password / refresh_token grants (sessions.py)
    POST /entity/auth/login | /entity/auth/logout  cookie sessions; logout also ends an OAuth session
    GET  <endpoint>/swagger.json                   the endpoint's OpenAPI document (schema.py)
    GET  <endpoint>/<Entity>/$adHocSchema          fields, views and workflow actions (schema.py)
    GET|PUT <endpoint>/<Entity>                    list / upsert (entities.py)
    GET|DELETE <endpoint>/<Entity>/<keys|id>       by key (URL-encoded segments) or session id
    POST <endpoint>/Bill/<Action>, PurchaseOrder/<Action>   actions (actions.py)
    GET  <endpoint>/Bill/<Action>/status/<guid>    a long operation's status: 202 running, 204 done
    PUT  <endpoint>/<Entity>/<keys>/files/<name>   attach a file; GET <endpoint>/files/<id> (files.py)
where <endpoint> is /entity/Default/<version>. Anything else: 404 "No HTTP resource was found that
matches the request URI …"; a known URL with another method: 405 as ASP.NET Web API answers it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any

from ..core import SimRequest, SimResponse, Simulator
from .actions import ActionsMixin
from .common import BUILD_VERSION, ENTITIES, VERSIONS, no_resource
from .entities import EntitiesMixin
from .files import FilesMixin
from .people import PeopleMixin
from .push import PushMixin
from .schema import SchemaMixin
from .seed import SeedMixin
from .sessions import SessionsMixin

SWAGGER_RE = r"/entity/[^/]+/[^/]+/swagger\.json"
# Served but not checked against the spec: the spec document itself (SPEC_GAPS SBX-ACU-SWAGGER), a
# file's bytes and a file upload's raw body (SBX-ACU-FILES).
UNCHECKED_REQUESTS = (
    ("GET", SWAGGER_RE),
    ("GET", r"/entity/[^/]+/[^/]+/files/[^/]+"),
    ("PUT", r".*/files/[^/]+"),
)
UNCHECKED_RESPONSES = UNCHECKED_REQUESTS[:2]


class AcumaticaSimulator(
    SessionsMixin,
    ActionsMixin,
    EntitiesMixin,
    FilesMixin,
    PeopleMixin,
    PushMixin,
    SchemaMixin,
    SeedMixin,
    Simulator,
):
    name = "acumatica"
    contract = "acumatica"

    def __init__(
        self,
        base_url: str,
        *,
        strict_contract: bool = False,
        deliver=None,
        tenant: str = "Company",
        seat_limit: int = 2,
        token_lifetime: int = 3600,
        cookie_idle_seconds: float = 600.0,
        release_polls: int | None = 2,
        operation_seconds: float = 2.0,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        clock_offset: float = 0.0,
    ):
        """`seat_limit`: the licence's API users (a trial has 2, §2.3). `token_lifetime`: an OAuth
        session's hour (§2.1). `cookie_idle_seconds`: a cookie session's idle timeout (10 min, §2.2).
        `operation_seconds`: how long a release runs server-side; `release_polls`: the status polls
        after which it is seen done at the latest (None: time alone decides; see actions.py)."""
        super().__init__(base_url, strict_contract=strict_contract, deliver=deliver)
        self.tenant = tenant
        self.seat_limit = seat_limit
        self.token_lifetime = token_lifetime
        self.cookie_idle_seconds = cookie_idle_seconds
        self.release_polls = release_polls
        self.operation_seconds = operation_seconds
        self.random = random.Random(seed)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.real_clock = clock is None
        self.clock_offset = clock_offset
        self.records: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {e: {} for e in ENTITIES}
        self.deleted: dict[str, set[tuple[str, ...]]] = {e: set() for e in ENTITIES}
        self.locks: dict[tuple[str, tuple[str, ...]], int] = {}
        self.requires_approval: set[tuple[str, str]] = set()
        self._counters: dict[str, int] = {}
        self._last_modified = datetime(2000, 1, 1, tzinfo=UTC)
        self._init_sessions()
        self._init_actions()
        self._init_push()
        self._init_files()
        self._routes()

    # ---- routes -------------------------------------------------------------------------------
    def _routes(self) -> None:
        ep = r"/entity/(?P<ep>[^/]+)/(?P<ver>[^/]+)"
        ent = r"(?P<entity>" + "|".join(ENTITIES) + ")"
        self.add_route("GET", r"/entity/?", self._list_endpoints)
        self.add_route("POST", r"/identity/connect/token", self._token)
        self.add_route("POST", r"/entity/auth/login", self._login)
        self.add_route("POST", r"/entity/auth/logout", self._logout)
        self.add_route("GET", ep + r"/swagger\.json", self._swagger)
        self.add_route(
            "GET", ep + r"/Bill/(?P<action>\w+)/status/(?P<sid>[0-9a-fA-F-]{36})", self._action_status
        )
        self.add_route("GET", ep + "/" + ent + r"/\$adHocSchema", self._ad_hoc_schema)
        self.add_route("GET", ep + r"/files/(?P<file_id>[0-9a-fA-F-]{36})", self._get_file)
        self.add_route("PUT", ep + "/" + ent + r"/(?P<keys>.+?)/files/(?P<filename>[^/]+)", self._put_file)
        self.add_route("POST", ep + r"/Bill/(?P<action>\w+)", self._bill_action)
        self.add_route("POST", ep + r"/PurchaseOrder/(?P<action>\w+)", self._po_action)
        self.add_route("GET", ep + "/" + ent, self._list)
        self.add_route("PUT", ep + "/" + ent, self._put)
        self.add_route("GET", ep + "/" + ent + r"/(?P<keys>.+)", self._get)
        self.add_route("DELETE", ep + "/" + ent + r"/(?P<keys>.+)", self._delete)

    def handle(self, req: SimRequest) -> SimResponse:
        try:
            resp = super().handle(req)
        finally:
            self._auto_flush()
        resp.headers.setdefault("Date", formatdate(self.now().timestamp(), usegmt=True))
        return resp

    def control(self, name: str, **params: Any) -> Any:
        try:
            return super().control(name, **params)
        finally:
            self._auto_flush()  # a person's change is pushed outside the state lock

    def _dispatch(self, req: SimRequest) -> SimResponse:
        resp = super()._dispatch(req)
        if resp.status == 405:  # a known URL, another method (injected faults never reach here)
            return SimResponse.json(
                {"message": f"The requested resource does not support http method '{req.method}'."}, 405
            )
        return resp

    def _validate_request(self, req: SimRequest) -> None:
        if _unchecked(req, UNCHECKED_REQUESTS):
            return
        if not any(pattern.match(req.path) for _m, pattern, _h in self.routes):
            return  # no such resource: answered 404 as Acumatica answers it, not a contract failure
        super()._validate_request(req)

    def _validate_response(self, req: SimRequest, resp: SimResponse) -> None:
        if _unchecked(req, UNCHECKED_RESPONSES):
            return
        if not any(pattern.match(req.path) for _m, pattern, _h in self.routes):
            return
        super()._validate_response(req, resp)

    def fault_body(self, status: int) -> Any:
        if status == 429:
            # Plain text is what a 3P test observed (reference §6.3); do not assume JSON on 429.
            return "The custom error module does not recognize this error."
        if status in (502, 503, 504):
            return (
                f"<html><head><title>{status} Service Unavailable</title></head><body><h1>Service "
                "Unavailable</h1><p>The server is temporarily unable to service your request.</p>"
                "</body></html>"
            )
        if status == 401:
            return {"message": "You are not logged in."}
        return {
            "message": "An error has occurred.",
            "exceptionMessage": f"Injected fault {status}.",
            "exceptionType": "System.Exception",
        }

    def not_found_body(self, req: SimRequest) -> Any:
        return no_resource(req.url).body

    # ---- shared by the resource modules --------------------------------------------------------
    def _endpoint(self, req: SimRequest, ep: str, ver: str) -> str:
        """The session of an endpoint request; refused while that session runs a long operation."""
        principal = self._principal(req)
        if ep != "Default" or ver not in VERSIONS:
            # UNVERIFIED (reference §1.3): a wrong version most likely answers 404.
            raise no_resource(req.url)
        self._refuse_during_operation(principal, req)
        return principal

    def _list_endpoints(self, req: SimRequest) -> SimResponse:
        return SimResponse.json(
            {
                "version": {"acumaticaBuildVersion": BUILD_VERSION, "databaseVersion": BUILD_VERSION},
                "endpoints": [
                    {"name": "Default", "version": v, "href": f"{self.base_path}/entity/Default/{v}/"}
                    for v in VERSIONS
                ],
            }
        )


def _unchecked(req: SimRequest, rules: tuple[tuple[str, str], ...]) -> bool:
    return any(req.method == method and re.fullmatch(pattern, req.path) for method, pattern in rules)
