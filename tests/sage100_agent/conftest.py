"""Fixtures for the Sage 100 agent tests: no Django, no database, loopback only."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sage100_agent.boi import BOIBackend
from sage100_agent.config import AgentConfig, BOIConfig, from_dict
from sage100_agent.ledger import Ledger
from sage100_agent.server import RunningAgent, create_app, start_in_thread
from sage100_agent.signing import sign_request
from sage100_agent.simulated import SimulatedBackend

from .fake_com import PERSONALITIES, FakeSage

API_KEY = "test-api-key-0123456789"
SECRET = "test-hmac-secret-0123456789abcdef0123456789"
READ_KEY = "read-only-key-0123456789"
ADMIN_KEY = "operator-admin-key-0123456789"
ADMIN_SECRET = "operator-admin-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _isolated_var_dir():
    """Override the suite-wide fixture (it needs Django settings); the agent has no Django and no var/."""
    yield


def make_config(tmp_path, **agent_overrides: Any) -> AgentConfig:
    data = {
        "agent": {
            "company": "ABC",
            "backend": "simulated",
            "ledger_path": str(tmp_path / "ledger.sqlite3"),
            "server_timezone": "America/Chicago",
            **agent_overrides,
        },
        "server": {"host": "127.0.0.1", "port": 0, "allow_plain_http": True},
        "auth": {
            "clients": [
                {"name": "connector", "api_key": API_KEY, "hmac_secret": SECRET},
                {"name": "reader", "api_key": READ_KEY, "hmac_secret": SECRET, "scopes": ["read"]},
                {"name": "operator", "api_key": ADMIN_KEY, "hmac_secret": ADMIN_SECRET, "scopes": ["admin"]},
            ]
        },
        "simulated": {"state_path": str(tmp_path / "sim.sqlite3"), "seed_demo": True},
    }
    return from_dict(data, env={})


@pytest.fixture
def config(tmp_path) -> AgentConfig:
    return make_config(tmp_path)


@pytest.fixture
def sim(config) -> SimulatedBackend:
    backend = SimulatedBackend(config.simulated_state_path, company="ABC", tz=config.timezone())
    backend.seed_demo()
    return backend


@pytest.fixture
def agent(config, sim) -> Iterator[RunningAgent]:
    app = create_app(config, backend=sim, ledger=Ledger(config.ledger_path))
    running = start_in_thread(app, port=0)
    try:
        yield running
    finally:
        running.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    agent: RunningAgent,
    method: str,
    path: str,
    body: Any = None,
    *,
    idem: str | None = None,
    api_key: str = API_KEY,
    secret: str = SECRET,
    timestamp: int | None = None,
    extra_headers: dict[str, str] | None = None,
    raw_body: bytes | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 15,
    nonce: str | None = None,
) -> Reply:
    payload = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else b"")
    headers = sign_request(
        api_key, secret, method, path, timestamp, payload, idempotency_key=idem, nonce=nonce
    )
    headers["Content-Type"] = "application/json"
    headers.update(extra_headers or {})
    if agent.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            agent.host, agent.port, timeout=timeout, context=ssl_context
        )
    else:
        conn = http.client.HTTPConnection(agent.host, agent.port, timeout=timeout)
    try:
        conn.request(method, path, body=payload, headers=headers)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def po_body(external_id: str = "1209876543210987", **overrides: Any) -> dict[str, Any]:
    body = {
        "external_id": external_id,
        "vendor": {"division": "00", "vendor_no": "1"},
        "po_date": "2025-03-01",
        "required_date": "2025-03-15",
        "warehouse_code": "000",
        "comment": "Asana " + external_id,
        "lines": [
            {
                "type": "misc",
                "item_code": "/SERVICES",
                "description": "Pour footings",
                "quantity": "1",
                "unit_cost": "1500.00",
                "gl_account": "5000-01-00",
                "job": {"job_no": "J000123", "cost_code": "100-200", "cost_type": "S"},
            },
            {"type": "inventory", "item_code": "rebar-4", "quantity": "10", "unit_cost": "4.25"},
            {"type": "comment", "text": "See Asana task for drawings"},
        ],
    }
    body.update(overrides)
    return body


@pytest.fixture(params=PERSONALITIES)
def sage(request):
    """The fake ProvideX in both personalities (typed: tuples; late-bound: by-reference VARIANTs only),
    so every test that drives the BOI backend runs against each (issue 19 item 1)."""
    return FakeSage(request.param)


@pytest.fixture
def boi(sage, tmp_path):
    """A BOI backend driving the fake COM server (tests/sage100_agent/fake_com.py)."""
    cfg = BOIConfig(
        home=r"C:\Sage\MAS90\Home", user="agent", password="pw", pool_size=1, acquire_timeout_seconds=2
    )
    backend = BOIBackend(
        cfg,
        "abc",
        Ledger(str(tmp_path / "l.sqlite3")),
        tz=ZoneInfo("America/Chicago"),
        com_factory=sage.script,
        com_init=lambda: None,
        call_timeout=10,
        today=lambda: date(2025, 3, 1),
    )
    yield backend
    backend.close()
