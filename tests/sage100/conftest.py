"""A real Simulated Sage 100 agent on loopback (HTTP, or HTTPS with a certificate made at test time),
and a tenant whose Sage100Connection points at it. No network: 127.0.0.1 only."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass, field

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integrations.models import Sage100Connection, Tenant
from integrations.sage100.agent.config import from_dict
from integrations.sage100.agent.server import create_app, start_in_thread

API_KEY = "connector-test-api-key-0123456789"
SECRET = "connector-test-hmac-secret-0123456789abcdef"


def agent_config(tmp_path, **agent: object):
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
            "auth": {"clients": [{"name": "connector", "api_key": API_KEY, "hmac_secret": SECRET}]},
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


@dataclass
class Cert:
    cert_path: str
    key_path: str
    pem: str
    fingerprint: str  # AA:BB:… as an operator would copy it
    extra: dict = field(default_factory=dict)


def make_cert(tmp_path, name: str = "agent") -> Cert:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sage-agent.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    return Cert(str(cert_path), str(key_path), pem.decode(), fingerprint)


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
