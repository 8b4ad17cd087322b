"""A tenant wired to the in-process Asana sandbox (strict contract, mounted through `responses`) and a
real Simulated Sage 100 agent on loopback (passed through by `responses`), with the demo project's
"Purchase requests" mappings. Import `pr_world` into a test module to use it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
import responses

from integrations.asana.client import client_for as asana_client_for
from integrations.flows import clients as flow_clients
from integrations.models import AsanaConnection, Flow, Tenant
from integrations.sage100.client import client_for as sage_client_for
from mappings.models import FieldMapping, ValueMapping
from sandbox.asana import DEMO, build_demo

from .conftest import make_connection, start_agent

ASANA_URL = "https://app.asana.com/api/1.0"
F = DEMO["fields"]
OPT = DEMO["options"]
COST = OPT["cost_code"]


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


@dataclass
class PRWorld:
    tenant: Tenant
    flow: Flow
    asana: Any  # AsanaSimulator
    agent: Any  # RunningAgent
    asana_client: Any
    sage_client: Any
    clock: Clock

    @property
    def backend(self):
        return self.agent.backend

    def request_task(
        self,
        name="Ready-mix for footings",
        vendor="ABC Concrete",
        amount=1500.0,
        cost=COST["5000 Materials"],
        approved=True,
    ) -> str:
        values = {F["vendor"]: vendor, F["amount"]: amount, F["cost_code"]: cost}
        values = {k: v for k, v in values.items() if v is not None}
        gid = self.asana.add_task(DEMO["pr_project"], name, custom_fields=values, user=DEMO["users"]["bob"])
        if approved:
            self.approve(gid)
        return gid

    def approve(self, gid: str) -> None:
        self.clock.now += 1
        self.asana.ui_update_task(gid, DEMO["users"]["alice"], completed=True)

    def comments(self, gid: str) -> list[str]:
        return self.asana.comments(gid)  # comments only: every change leaves a story too

    def values(self, gid: str) -> dict:
        return self.asana.task_values(gid)

    def process(self, gid: str) -> str:
        from integrations.flows.purchase_requests.orders import process_purchase_request

        return process_purchase_request(self.flow, gid, asana=self.asana_client, sage=self.sage_client)


def mapping(flow, path, gid, type_, direction, values=()):
    fm = FieldMapping.objects.create(
        flow=flow, source_path=path, asana_field_gid=gid, cached_type=type_, direction=direction
    )
    for source, target in values:
        ValueMapping.objects.create(
            tenant=flow.tenant, field_mapping=fm, kind="enum_option", source_value=source, target_value=target
        )
    return fm


def configure(tenant: Tenant) -> Flow:
    flow = Flow.objects.create(
        tenant=tenant,
        name="Purchase requests",
        kind=Flow.Kind.ASANA_PURCHASE_REQUESTS,
        asana_project_gid=DEMO["pr_project"],
        approval_rule=Flow.ApprovalRule.COMPLETED,
    )
    mapping(flow, "VendorNo", F["vendor"], "text", "to_erp")
    mapping(flow, "CostCode", F["cost_code"], "enum", "to_erp")
    mapping(flow, "Amount", F["amount"], "number", "to_erp")
    mapping(flow, "PurchaseOrderNo", F["po_number"], "text", "to_asana")
    mapping(flow, "VendorName", F["vendor"], "text", "to_asana")
    created, error = OPT["sage_status"]["PO created"], OPT["sage_status"]["Error"]
    mapping(
        flow,
        "OrderStatus",
        F["sage_status"],
        "enum",
        "to_asana",
        values=[
            ("N", created),
            ("O", created),
            ("B", created),
            ("X", created),
            ("REFUSED", error),
            ("DELETED", error),
        ],
    )
    for source, target in (
        ("ABC Concrete", "00-0000001"),
        ("ABC Concrete Supply", "00-0000001"),
        ("Metro Equipment Rental", "00-0000150"),
        ("Old Quarry", "00-0000099"),  # inactive in the Sage seed
        ("Ghost Supply", "00-7777777"),  # not in Sage
    ):
        ValueMapping.objects.create(tenant=tenant, kind="vendor", source_value=source, target_value=target)
    for option, target in (
        ("5000 Materials", "5000-01-00"),
        ("6000 Services", "6000-00-00"),
        ("7000 Travel", "6900-00-00"),  # inactive GL account in the Sage seed
    ):
        ValueMapping.objects.create(
            tenant=tenant, kind="cost_code", source_value=COST[option], target_value=target
        )
    return flow


@pytest.fixture
def pr_world(db, tmp_path, monkeypatch):
    clock = Clock()
    asana = build_demo(ASANA_URL, strict_contract=True, clock=clock)
    agent = start_agent(tmp_path)
    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline")
    asana_conn = AsanaConnection.objects.create(
        tenant=tenant,
        personal_access_token=DEMO["pat"],
        workspace_gid=DEMO["workspace"],
        connector_user_gid=DEMO["connector_user"],
        api_base_url=ASANA_URL,
    )
    sage_conn = make_connection(tenant, agent.url)
    flow = configure(tenant)
    asana_client = asana_client_for(asana_conn, rate_limiter=None, sleep=clock.sleep)
    sage_client = sage_client_for(sage_conn, sleep=lambda s: None)
    monkeypatch.setattr(
        flow_clients, "clients_for", lambda t: flow_clients.Clients(t, asana=asana_client, sage=sage_client)
    )
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            asana.mount(rsps)
            rsps.add_passthru(agent.url)
            yield PRWorld(tenant, flow, asana, agent, asana_client, sage_client, clock)
    finally:
        agent.stop()
