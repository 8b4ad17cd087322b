"""The Sage 100 agent's HTTP app fuzzed through its WSGI callable (no server, no Django).

Contract (docs/sage100-agent.md §3, §8): every answer is a JSON envelope; 2xx or 4xx for anything a
caller can send, 503 only while the agent is draining/paused, never a 500. Without a valid signature
nothing happens: no idempotency-ledger row, no purchase order, no drain or resume.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sage100_agent.ledger import Ledger
from sage100_agent.server import create_app
from sage100_agent.signing import sign_request
from sage100_agent.simulated import SimulatedBackend
from tests.sage100_agent.conftest import API_KEY, READ_KEY, SECRET, make_config, po_body

from .conftest import FUZZ
from .strategies import LATIN1, json_values

CAP = 16384
ROUTES = [
    "/v1/ping",
    "/v1/vendors",
    "/v1/vendors/00-0000001",
    "/v1/gl-accounts",
    "/v1/gl-accounts/5000-01-00",
    "/v1/purchase-orders",
    "/v1/purchase-orders/0000001",
    "/v1/selftest",
    "/v1/admin/drain",
    "/v1/admin/resume",
]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get", "TRACE"]
header_values = st.one_of(
    st.text(LATIN1, max_size=40),
    st.just("é" * 300),
    st.just("x" * 9000),
    st.sampled_from(["Bearer ", "Bearer " + API_KEY, "v1=", "v1=" + "0" * 64, "-1", "9" * 400, "1e9"]),
)


po_variants = st.builds(
    lambda key, value, base: json.dumps({**base, key: value}).encode(),
    st.sampled_from(
        ["external_id", "vendor", "po_date", "lines", "required_date", "comment", "warehouse_code"]
    ),
    json_values,
    st.just(po_body("1209876543219999")),
)
deep = st.sampled_from([10, 900, 990, 3000, 8000, 200_000]).map(lambda n: b"[" * n + b"]" * n)
bodies = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=64).map(lambda b: b"\xff\xfe\xc3(" + b),
    json_values.map(lambda v: json.dumps(v).encode()),
    po_variants,
    deep,
    st.sampled_from([0, 1, -1]).map(lambda d: b"x" * (CAP + d)),
)
ROUTE_METHODS = [
    ("GET", "/v1/ping"),
    ("GET", "/v1/vendors"),
    ("GET", "/v1/vendors/00-0000001"),
    ("GET", "/v1/gl-accounts"),
    ("GET", "/v1/gl-accounts/5000-01-00"),
    ("POST", "/v1/purchase-orders"),
    ("POST", "/v1/purchase-orders"),
    ("GET", "/v1/purchase-orders"),
    ("GET", "/v1/purchase-orders/0000001"),
    ("GET", "/v1/selftest"),
    ("POST", "/v1/admin/drain"),
    ("POST", "/v1/admin/resume"),
]
paths = st.one_of(
    st.sampled_from(ROUTES),
    st.sampled_from(ROUTES).map(lambda p: p + "/extra"),
    st.text(LATIN1, max_size=30).map(lambda t: "/v1/" + t),
    st.text(LATIN1, max_size=30).map(lambda t: "/v1/vendors/" + t),
)
queries = st.one_of(
    st.just(""),
    st.sampled_from(
        [
            "limit=abc",
            "limit=99999999999999999999",
            "updated_since=garbage",
            "updated_since=2025-01-01T00:00:00Z&overlap_seconds=-5",
            "cursor=!!!",
            "cursor=W10",
            "dry_run=true",
            "external_id=" + "9" * 500,
            "division=ZZZ",
            "status=Q",
            "include=lines",
        ]
    ),
    st.text(LATIN1, max_size=30),
)


def environ(
    method: str,
    path: str,
    query: str,
    body: bytes,
    headers: dict[str, str],
    content_length: str | None = None,
) -> dict[str, Any]:
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "https",
        "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
    }
    for name, value in headers.items():
        if name.lower() == "content-type":
            env["CONTENT_TYPE"] = value
        else:
            env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def call_app(app, env: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app(env, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


class AgentUnderFuzz:
    def __init__(self, tmp_path) -> None:
        self.config = make_config(tmp_path, max_body_bytes=CAP)
        self.sim = SimulatedBackend(
            self.config.simulated_state_path, company="ABC", tz=self.config.timezone()
        )
        self.sim.seed_demo()
        self.ledger = Ledger(self.config.ledger_path)
        self.app = create_app(self.config, backend=self.sim, ledger=self.ledger)

    def effects(self) -> tuple:
        return (self.sim.count_pos(), len(self.ledger.rows()), self.app.state.mode)

    def close(self) -> None:
        self.sim.close()
        self.ledger.close()


@pytest.fixture
def agent_app(tmp_path):
    agent = AgentUnderFuzz(tmp_path)
    yield agent
    agent.close()


def test_the_harness_can_create_a_po_so_no_effect_is_meaningful(agent_app):
    body = json.dumps(po_body("1209876543210001")).encode()
    headers = sign_request(API_KEY, SECRET, "POST", "/v1/purchase-orders", body=body, idempotency_key="k-1")
    headers.update({"Content-Type": "application/json"})
    status, _, reply = call_app(agent_app.app, environ("POST", "/v1/purchase-orders", "", body, headers))
    assert status == 201, reply
    assert agent_app.effects() == (1, 1, "running")


@FUZZ
@given(
    method=st.sampled_from(METHODS),
    path=paths,
    query=queries,
    body=bodies,
    forged=st.dictionaries(
        st.sampled_from(
            [
                "Authorization",
                "X-Timestamp",
                "X-Signature",
                "X-Nonce",
                "X-Content-SHA256",
                "Idempotency-Key",
                "Content-Type",
                "Content-Encoding",
                "X-Forwarded-For",
            ]
        ),
        header_values,
        max_size=6,
    ),
    signing=st.sampled_from(["none", "wrong-secret", "stale", "other-path", "garbage"]),
    content_length=st.sampled_from([None, None, "abc", "-1", "99999999", "0"]),
)
def test_unauthenticated_requests_are_4xx_and_change_nothing(
    agent_app, method, path, query, body, forged, signing, content_length
):
    target = path + (f"?{query}" if query else "")
    headers: dict[str, str] = {}
    now = int(time.time())
    if signing == "wrong-secret":
        headers = sign_request(API_KEY, "not-the-secret-0123456789abcdef", method, target, body=body)
    elif signing == "stale":
        headers = sign_request(API_KEY, SECRET, method, target, timestamp=now - 3600, body=body)
    elif signing == "other-path":
        headers = sign_request(API_KEY, SECRET, method, "/v1/signed-for-another-path", body=body)
    headers.update(forged)
    if signing == "garbage":
        headers["Authorization"] = "Bearer " + forged.get("Authorization", "no-such-key-0123456789")
    before = agent_app.effects()
    env = environ(method, path, query, body, headers, content_length)
    env["REQUEST_URI"] = target
    status, reply_headers, reply = call_app(agent_app.app, env)
    assert 400 <= status < 500, (status, reply[:300])
    assert reply_headers["Content-Type"] == "application/json"
    assert json.loads(reply)["error"]["code"]
    assert agent_app.effects() == before


@settings(FUZZ, max_examples=FUZZ.max_examples * 2)
@given(
    endpoint=st.one_of(
        st.sampled_from(ROUTE_METHODS),
        st.sampled_from(ROUTE_METHODS),
        st.tuples(st.sampled_from(METHODS), paths),
    ),
    query=queries,
    body=bodies,
    idempotency_key=st.one_of(st.uuids().map(str), header_values),
    extra=st.dictionaries(
        st.sampled_from(["X-Content-SHA256", "Content-Type", "Content-Encoding"]),
        header_values,
        max_size=3,
    ),
    key=st.sampled_from([API_KEY, API_KEY, READ_KEY]),
    paused=st.sampled_from([False, False, True]),
)
def test_authenticated_malformed_requests_never_5xx_except_503_while_paused(
    agent_app, endpoint, query, body, idempotency_key, extra, key, paused
):
    method, path = endpoint
    if paused:
        agent_app.app.state.drain(0)
    else:
        agent_app.app.state.resume()
    target = path + (f"?{query}" if query else "")
    headers = sign_request(key, SECRET, method.upper(), target, body=body, idempotency_key=idempotency_key)
    headers.update(extra)
    env = environ(method, path, query, body, headers)
    env["REQUEST_URI"] = target
    status, _, reply = call_app(agent_app.app, env)
    event(f"status {status}")
    if status == 503:
        assert agent_app.app.state.mode != "running" and json.loads(reply)["error"]["code"] == "SAGE_PAUSED"
    else:
        assert status < 500, (status, reply[:300])
    assert json.loads(reply)  # always a JSON body


@FUZZ
@given(
    declared=st.sampled_from([CAP - 1, CAP, CAP + 1, 10**9]), actual=st.sampled_from([0, 10, CAP, CAP + 1])
)
def test_size_cap_is_enforced_on_the_declared_length(agent_app, declared, actual):
    body = b"{" + b" " * max(0, actual - 2) + b"}" if actual else b""
    headers = sign_request(
        API_KEY, SECRET, "POST", "/v1/purchase-orders", body=body, idempotency_key="size-case"
    )
    env = environ("POST", "/v1/purchase-orders", "", body, headers, str(declared))
    before = agent_app.effects()
    status, _, reply = call_app(agent_app.app, env)
    assert status < 500, reply
    if declared > CAP:
        assert status == 413
        assert agent_app.effects() == before
