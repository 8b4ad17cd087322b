"""The machinery every simulator shares: routing, state lock, fault injection, contract checks,
mounting in-process through `responses`, serving on loopback through WSGI, and outbound delivery.

Extension contract for a simulator (see acumatica.py, asana.py):
- subclass `Simulator`, set `name` and `contract` ("asana"/"acumatica" validates every request and
  response against the vendor's OpenAPI spec when `strict_contract` is on, as it is in tests);
- register handlers with `self.add_route(method, regex, handler)`; the regex is matched against the
  path below `base_path` and its named groups are passed as keyword arguments;
- a handler takes a `SimRequest` and returns a `SimResponse`; raise `SimError(status, body)` for errors;
- keep all state on the instance and touch it only inside handlers (`handle` holds `self.lock`).

Faults (`sim.faults.add(...)`) are consumed by matching requests in order:
    status            answer `status` (with optional `retry_after` header / body) instead of handling
    timeout           the client sees a read timeout; the request is NOT applied
    drop_after_write  the request IS applied, then the client sees a lost connection (unknown outcome)
    latency           sleep `delay` seconds, then handle normally
Controls (acting as a person, clocks, faults) are one small API for in-process tests and served sandboxes
alike: a method decorated with `@control` is callable as `sim.control("name", **params)` and, when served,
as `POST <base_url>/_sandbox/<name>` with a JSON object of the params (answer: `{"data": result}`;
`GET <base_url>/_sandbox/` lists the controls). Control requests bypass faults, rate limits and contract
checks: they are the test's hand, not a client of the vendor API.
`request_log` keeps (method, path, status) of every request seen; with `keep_dispatched = True`,
`dispatched` also keeps each request a handler ran with its status (bodies included, so it is off by
default), so a test can count the writes a system actually applied.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

Deliverer = Callable[[str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


@dataclass
class SimRequest:
    method: str
    path: str  # below the simulator's base path, starting with "/"
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict
    body: bytes
    url: str

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        if not self.body:
            raise SimError(400, {"message": "request body is empty"})
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise SimError(400, {"message": f"request body is not JSON: {exc}"}) from exc


@dataclass
class SimResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: dict[str, str] | None = None, default: Any = None
    ) -> SimResponse:
        return cls(
            status,
            json.dumps(data, default=default).encode(),
            {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )

    @classmethod
    def empty(cls, status: int = 204, headers: dict[str, str] | None = None) -> SimResponse:
        return cls(status, b"", dict(headers or {}))


class SimError(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}

    def response(self) -> SimResponse:
        if isinstance(self.body, (bytes, str)):
            body = self.body.encode() if isinstance(self.body, str) else self.body
            return SimResponse(self.status, body, {"Content-Type": "text/html", **self.headers})
        return SimResponse.json(self.body or {}, self.status, self.headers)


class LostResponse(Exception):
    """Raised to the transport when a fault says the client must not see the answer."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


@dataclass
class Fault:
    kind: str  # status | timeout | drop_after_write | latency
    method: str | None = None
    path: str | None = None  # regex searched in the path
    times: int = 1
    status: int = 500
    retry_after: float | None = None
    body: Any = None
    delay: float = 0.0

    def matches(self, req: SimRequest) -> bool:
        if self.method and self.method.upper() != req.method:
            return False
        return not (self.path and not re.search(self.path, req.path))


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, kind: str, **kwargs: Any) -> Fault:
        fault = Fault(kind=kind, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, req: SimRequest) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.matches(req):
                    fault.times -= 1
                    return fault
        return None

    @property
    def pending(self) -> list[Fault]:
        return [f for f in self._faults if f.times > 0]


def http_deliverer(timeout: float = 10.0) -> Deliverer:
    """Deliver outbound calls (webhook handshakes, pushes) over real HTTP with urllib.

    urllib, not requests, so that `responses` (which patches requests) never intercepts them.
    """

    def deliver(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if urlsplit(url).scheme not in ("http", "https"):
            return 0, {}, b"refused: only http(s) targets are delivered to"
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback only
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            return 0, {}, str(exc).encode()

    return deliver


CONTROL_PREFIX = "/_sandbox/"


def control(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a simulator method as a control (see the module docstring)."""
    func.is_sandbox_control = True  # type: ignore[attr-defined]
    return func


class Simulator:
    name = "simulator"
    contract: str | None = None

    def __init__(self, base_url: str, *, strict_contract: bool = False, deliver: Deliverer | None = None):
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.base_path = parts.path.rstrip("/")
        self.strict_contract = strict_contract
        self.deliver = deliver or http_deliverer()
        self.faults = FaultInjector()
        self.lock = threading.RLock()
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., SimResponse]]] = []
        self.request_log: list[tuple[str, str, int]] = []
        # Every request a handler ran, with its status (a drop_after_write is here too: it was applied).
        self.keep_dispatched = False
        self.dispatched: list[tuple[SimRequest, int]] = []

    # ---- routing ------------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, handler: Callable[..., SimResponse]) -> None:
        self.routes.append((method.upper(), re.compile(f"^{pattern}$"), handler))

    def handle(self, req: SimRequest) -> SimResponse:
        """Answer one request; may raise LostResponse when a fault hides the answer."""
        if self.strict_contract and self.contract:
            self._validate_request(req)
        fault = self.faults.take(req)
        if fault is not None:
            if fault.kind == "latency":
                time.sleep(fault.delay)
            elif fault.kind == "timeout":
                self.request_log.append((req.method, req.path, 0))
                raise LostResponse("timeout")
            elif fault.kind == "status":
                headers = {} if fault.retry_after is None else {"Retry-After": str(int(fault.retry_after))}
                resp = SimError(
                    fault.status,
                    fault.body if fault.body is not None else self.fault_body(fault.status),
                    headers,
                ).response()
                self.request_log.append((req.method, req.path, resp.status))
                return resp
        with self.lock:
            resp = self._dispatch(req)
            if self.keep_dispatched:
                self.dispatched.append((req, resp.status))
        self.request_log.append((req.method, req.path, resp.status))
        if fault is not None and fault.kind == "drop_after_write":
            raise LostResponse("drop_after_write")
        if self.strict_contract and self.contract:
            self._validate_response(req, resp)
        return resp

    def fault_body(self, status: int) -> Any:
        """The body a vendor sends with an injected error status; simulators override it."""
        return {"message": f"injected fault {status}"}

    def _dispatch(self, req: SimRequest) -> SimResponse:
        allowed = []
        for method, pattern, handler in self.routes:
            match = pattern.match(req.path)
            if match:
                if method != req.method:
                    allowed.append(method)
                    continue
                try:
                    return handler(req, **match.groupdict())
                except SimError as exc:
                    return exc.response()
        if allowed:
            return self.wrong_method(req, allowed)
        return SimError(404, self.not_found_body(req)).response()

    def wrong_method(self, req: SimRequest, allowed: list[str]) -> SimResponse:
        """A known path asked with a method it does not serve; simulators answer as their vendor does."""
        return SimError(405, self.fault_body(405)).response()

    def not_found_body(self, req: SimRequest) -> Any:
        return {"message": f"no route for {req.method} {req.path}"}

    def _validate_request(self, req: SimRequest) -> None:
        from .contract import get_contract

        get_contract(self.contract).validate_request(req.method, req.url, dict(req.headers), req.body)

    def _validate_response(self, req: SimRequest, resp: SimResponse) -> None:
        from .contract import get_contract

        get_contract(self.contract).validate_response(
            req.method, req.url, dict(req.headers), resp.status, resp.headers, resp.body
        )

    # ---- controls ---------------------------------------------------------------------------------
    def controls(self) -> dict[str, Callable[..., Any]]:
        out = {}
        for name in dir(type(self)):
            attr = getattr(type(self), name, None)
            if callable(attr) and getattr(attr, "is_sandbox_control", False):
                out[name] = getattr(self, name)
        return out

    @control
    def inject_fault(self, kind: str, **params: Any) -> dict[str, Any]:
        """Queue a fault (status | timeout | drop_after_write | latency) for the matching requests."""
        fault = self.faults.add(kind, **params)
        return {"kind": fault.kind, "method": fault.method, "path": fault.path, "times": fault.times}

    @control
    def clear_faults(self) -> int:
        count = len(self.faults.pending)
        self.faults.clear()
        return count

    def control(self, name: str, /, **params: Any) -> Any:
        """Run one control (a person's action, a clock, a fault) under the state lock."""
        func = self.controls().get(name)
        if func is None:
            raise SimError(404, {"message": f"{self.name} sandbox has no control {name!r}"})
        with self.lock:
            return func(**params)

    def control_response(self, req: SimRequest) -> SimResponse:
        name = req.path[len(CONTROL_PREFIX) :].strip("/")
        if not name:
            return SimResponse.json({"data": sorted(self.controls())})
        if req.method != "POST":
            return SimResponse.json({"message": "controls are POSTed"}, 405)
        try:
            params = json.loads(req.body) if req.body else {}
            if not isinstance(params, dict):
                raise SimError(400, {"message": "control params must be a JSON object"})
            result = self.control(name, **params)
        except SimError as exc:
            return exc.response()
        except (TypeError, ValueError, KeyError) as exc:
            return SimResponse.json({"message": f"control {name!r}: {exc}"}, 400)
        return SimResponse.json({"data": result}, default=str)

    # ---- transports ---------------------------------------------------------------------------
    def _request_from(self, method: str, url: str, headers: Any, body: bytes | None) -> SimRequest:
        parts = urlsplit(url)
        path = parts.path[len(self.base_path) :] if parts.path.startswith(self.base_path) else parts.path
        return SimRequest(
            method=method.upper(),
            path=path or "/",
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(dict(headers or {})),
            body=body or b"",
            url=url,
        )

    def mount(self, rsps) -> None:
        """Serve this simulator in-process for every `requests` call to base_url (responses.RequestsMock)."""
        import requests

        def callback(prepared):
            body = prepared.body
            if isinstance(body, str):
                body = body.encode()
            elif body is not None and not isinstance(
                body, bytes
            ):  # a streamed body: read it as a server would
                body = body.read() if hasattr(body, "read") else b"".join(body)
            req = self._request_from(prepared.method, prepared.url, prepared.headers, body)
            if req.path.startswith(CONTROL_PREFIX):
                resp = self.control_response(req)
                return resp.status, resp.headers, resp.body
            try:
                resp = self.handle(req)
            except LostResponse as lost:
                if lost.kind == "timeout":
                    raise requests.exceptions.ReadTimeout(
                        f"{self.name} sandbox: injected read timeout"
                    ) from None
                raise requests.exceptions.ConnectionError(
                    f"{self.name} sandbox: connection lost after the request was applied"
                ) from None
            return resp.status, resp.headers, resp.body

        pattern = re.compile(re.escape(self.base_url) + r"(/.*)?(\?.*)?$")
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            rsps.add_callback(method, pattern, callback=callback)

    def wsgi_app(self, environ: dict, start_response: Callable) -> list[bytes]:
        """Serve this simulator over real HTTP (`connector sandbox`)."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
        query = environ.get("QUERY_STRING", "")
        path = (
            (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8")
        )
        url = f"http://{host}{path}" + (f"?{query}" if query else "")
        req = self._request_from(environ["REQUEST_METHOD"], url, headers, body)
        try:
            is_control = req.path.startswith(CONTROL_PREFIX)
            resp = self.control_response(req) if is_control else self.handle(req)
        except LostResponse:
            time.sleep(65)  # longer than any client read timeout: the client gives up
            resp = SimResponse.empty(504)
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}.get(resp.status, "Status")
        start_response(f"{resp.status} {reason}", list(resp.headers.items()))
        return [resp.body]
