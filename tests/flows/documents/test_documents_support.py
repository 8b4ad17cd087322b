"""Fixtures for the Acumatica → Asana document flow: both sandboxes mounted in-process, strict contract.

Imported by the test_documents_* modules (`from .test_documents_support import *`): tests/flows is
shared with other flows, so these fixtures do not live in a conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import responses

from integrations.flows.documents.settings import forget_field_specs
from integrations.flows.documents.sync import DocumentSync
from integrations.models import Flow, Tenant
from mappings.models import FieldMapping, ValueMapping
from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from sandbox.demo import connect_sandboxes

ACU_URL = "https://erp.ridgeline.test/AcumaticaERP"
ASANA_URL = "https://app.asana.com/api/1.0"
D = asana_sim.DEMO
F = D["fields"]
PUSH_SECRET = "push-secret-for-tests-0001"

__all__ = [
    "ACU_URL",
    "ASANA_URL",
    "D",
    "F",
    "PUSH_SECRET",
    "Clock",
    "acu",
    "asana",
    "bills_flow",
    "docs_tenant",
    "make_sync",
    "mounted",
    "now",
    "tasks_in_project",
    "writes",
]


@dataclass(eq=False)
class Clock:
    """One fake time for the Asana sandbox (float seconds) and the connector (aware datetimes)."""

    now: float = 1_780_000_000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.001)

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


@pytest.fixture
def now() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def _fresh_spec_cache():
    forget_field_specs()
    yield
    forget_field_specs()


@pytest.fixture
def acu(now):
    return acu_sim.build_demo(ACU_URL, strict_contract=True, clock=now.dt)


@pytest.fixture
def asana(now):
    return asana_sim.build_demo(ASANA_URL, strict_contract=True, clock=now)


@pytest.fixture
def mounted(acu, asana):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        acu.mount(rsps)
        asana.mount(rsps)
        yield rsps


@pytest.fixture
def docs_tenant(db) -> Tenant:
    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline Builders")
    connect_sandboxes(
        tenant,
        ACU_URL,
        ASANA_URL,
        acumatica={"tenant_login_name": "Ridgeline", "push_secret": PUSH_SECRET},
        asana={"connector_user_gid": D["connector_user"]},
    )
    return tenant


@pytest.fixture
def bills_flow(docs_tenant) -> Flow:
    flow = Flow.objects.create(
        tenant=docs_tenant,
        name="AP bills",
        kind="acumatica_bills",
        asana_project_gid=D["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
        task_name_template="Bill {ReferenceNbr} · {Vendor} · {Amount}",
        status_filter=["Balanced", "On Hold", "Pending Approval", "Voided"],
    )
    for path, gid, name, kind, precision in (
        ("Amount", F["amount"], "Amount", "number", 2),
        ("DueDate", F["due_date"], "Due date", "date", None),
        ("Vendor", F["vendor"], "Vendor", "text", None),
        ("Status", F["document_status"], "Document status", "enum", None),
    ):
        FieldMapping.objects.create(
            flow=flow,
            source_path=path,
            asana_field_gid=gid,
            cached_name=name,
            cached_type=kind,
            precision=precision,
        )
    status = FieldMapping.objects.get(flow=flow, source_path="Status")
    for value, option in (
        ("Balanced", "Balanced"),
        ("Open", "Open"),
        ("Closed", "Closed"),
        ("On Hold", "On Hold"),  # a disabled option in the demo Asana
    ):
        ValueMapping.objects.create(
            tenant=docs_tenant,
            field_mapping=status,
            source_value=value,
            target_value=D["options"]["document_status"][option],
        )
    ValueMapping.objects.create(
        tenant=docs_tenant,
        field_mapping=status,
        source_value="Pending Approval",
        target_value=D["options"]["document_status"]["Balanced"],
    )
    return flow


@pytest.fixture
def make_sync(bills_flow, mounted, now):
    from integrations.acumatica.client import client_for as acu_client
    from integrations.asana.client import client_for as asana_client

    def make(flow: Flow | None = None, **kwargs) -> DocumentSync:
        flow = flow or Flow.objects.get(pk=bills_flow.pk)
        tenant = flow.tenant
        quiet = {"recorder": lambda record: None} if kwargs.get("dry_run") else {}
        kwargs.setdefault("acumatica", acu_client(tenant.acumatica, sleep=now.sleep, **quiet))
        kwargs.setdefault("asana", asana_client(tenant.asana, rate_limiter=None, sleep=now.sleep, **quiet))
        kwargs.setdefault("now", now.dt)
        return DocumentSync(flow, **kwargs)

    return make


def tasks_in_project(asana, project: str = D["ap_project"]) -> dict[str, dict]:
    return {gid: t for gid, t in asana.tasks.items() if project in t["projects"]}


def writes(asana, since: int = 0) -> list[tuple[str, str]]:
    """(method, path) of the write requests Asana saw (after index `since`)."""
    return [(r.method, r.path) for r in asana.requests[since:] if r.method not in ("GET", "HEAD")]


def later(minutes: int) -> timedelta:
    return timedelta(minutes=minutes)
