"""A real Simulated Sage 100 agent on loopback (HTTP, or HTTPS with a certificate made at test time),
and a tenant whose Sage100Connection points at it. No network: 127.0.0.1 only."""

from __future__ import annotations

import pytest

from integrations.models import Sage100Connection, Tenant
from sage100_agent.config import from_dict
from sage100_agent.server import create_app, start_in_thread
from tests.tls_support import Cert, make_cert  # noqa: F401  (Cert re-exported for the tests)

API_KEY = "connector-test-api-key-0123456789"
SECRET = "connector-test-hmac-secret-0123456789abcdef"


def agent_config(tmp_path, *, api_key: str = API_KEY, hmac_secret: str = SECRET, **agent: object):
    return from_dict(
        {
            "agent": {
                "company": "ABC",
                "backend": "simulated",
                "ledger_path": str(tmp_path / "ledger.sqlite3"),
                "server_timezone": "America/Chicago",
                **agent,
            },
            "server": {"host": "127.0.0.1", "port": 0, "allow_plain_http": True},
            "auth": {"clients": [{"name": "connector", "api_key": api_key, "hmac_secret": hmac_secret}]},
            "simulated": {"state_path": str(tmp_path / "sim.sqlite3"), "seed_demo": True},
        },
        env={},
    )


def start_agent(tmp_path, **kwargs):
    return start_in_thread(create_app(agent_config(tmp_path)), port=0, **kwargs)


@pytest.fixture
def agent(tmp_path):
    running = start_agent(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def cert(tmp_path) -> Cert:
    return make_cert(tmp_path)


@pytest.fixture
def tls_agent(tmp_path, cert):
    running = start_agent(tmp_path, tls_cert=cert.cert_path, tls_key=cert.key_path)
    yield running
    running.stop()


@pytest.fixture
def tenant(db):
    return Tenant.objects.create(slug="ridgeline", name="Ridgeline Builders")


def make_connection(tenant, url: str, **fields) -> Sage100Connection:
    return Sage100Connection.objects.create(
        tenant=tenant,
        agent_url=url,
        api_key=API_KEY,
        signing_secret=SECRET,
        company_code="ABC",
        default_ap_division="00",
        **fields,
    )


@pytest.fixture
def connection(tenant, agent):
    return make_connection(tenant, agent.url)


class Sleeps:
    """The client's sleep: records the waits, never sleeps."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sage(connection, sleeps):
    from integrations.sage100.client import client_for

    return client_for(connection, sleep=sleeps)


def po_payload(external_id: str = "1209876543210987", **overrides) -> dict:
    body = {
        "external_id": external_id,
        "vendor": {"division": "00", "vendor_no": "1"},
        "po_date": "2025-03-01",
        "comment": f"Asana {external_id}",
        "udf": {"UDF_ASANA_GID": external_id},
        "lines": [
            {
                "type": "misc",
                "item_code": "/MATERIALS",
                "description": "Ready-mix 4000 psi",
                "quantity": "10",
                "unit_cost": "150.00",
                "gl_account": "5000-01-00",
            }
        ],
    }
    body.update(overrides)
    return body
