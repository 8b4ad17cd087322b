"""Fixtures: a tenant, an Acumatica connection and the demo sandbox mounted in-process (strict contract)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from integrations.acumatica.client import AcumaticaClient, client_for
from integrations.models import AcumaticaConnection, Tenant
from sandbox.acumatica import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_PASSWORD,
    DEMO_USER,
    AcumaticaSimulator,
    build_demo,
)

INSTANCE = "https://erp.ridgeline.test/AcumaticaERP"


class FakeClock:
    """Monotonic clock advanced only by the fake sleep: no test waits for real time."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeLimiter:
    def __init__(self) -> None:
        self.acquired = 0
        self.released = 0
        self.in_flight = 0
        self.max_seen = 0

    def acquire(self, *, write: bool) -> float:
        self.acquired += 1
        self.in_flight += 1
        self.max_seen = max(self.max_seen, self.in_flight)
        return 0.0

    def release(self, *, write: bool) -> None:
        self.released += 1
        self.in_flight -= 1


@pytest.fixture
def tenant(db) -> Tenant:
    return Tenant.objects.create(slug="ridgeline", name="Ridgeline Construction")


@pytest.fixture
def sim() -> AcumaticaSimulator:
    return build_demo(INSTANCE, strict_contract=True)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def mounted(sim, rsps) -> AcumaticaSimulator:
    sim.mount(rsps)
    return sim


def make_connection(tenant: Tenant, **overrides) -> AcumaticaConnection:
    fields = dict(
        tenant=tenant,
        instance_url=INSTANCE,
        endpoint_name="Default",
        endpoint_version="24.200.001",
        auth_mode="oauth_password",
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        username=DEMO_USER,
        password=DEMO_PASSWORD,
        tenant_login_name="Ridgeline",
    )
    fields.update(overrides)
    return AcumaticaConnection.objects.create(**fields)


@pytest.fixture
def connection(tenant) -> AcumaticaConnection:
    return make_connection(tenant)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter() -> FakeLimiter:
    return FakeLimiter()


@pytest.fixture
def make_client(mounted, clock, limiter):
    def make(conn: AcumaticaConnection, **kwargs) -> AcumaticaClient:
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("rate_limiter", limiter)
        return client_for(conn, **kwargs)

    return make


@pytest.fixture
def client(make_client, connection) -> AcumaticaClient:
    return make_client(connection)
