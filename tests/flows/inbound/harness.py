"""A tenant wired to the in-process Asana and Acumatica sandboxes (strict contract), with Asana's
deliveries POSTed into Django's test client: the handshake hits the real view while the create call is
still open, and events reach the real view, queue and (django-q2 sync mode) worker.

Import the fixtures you use into the test module (`from tests.flows.inbound.harness import world`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses

from integrations.acumatica.client import client_for as acumatica_client_for
from integrations.asana.client import client_for as asana_client_for
from integrations.asana.shapes import parse_asana_time
from integrations.flows import clients as flow_clients
from integrations.flows.common import binding
from integrations.models import AcumaticaConnection, AsanaConnection, Flow, RecordLink, Tenant
from mappings.models import FieldMapping
from sandbox import acumatica as acu_sim
from sandbox.asana import DEMO, build_demo

ASANA_URL = "https://app.asana.com/api/1.0"
ACUMATICA_URL = "https://erp.ridgeline.test/AcumaticaERP"
F = DEMO["fields"]
OPT = DEMO["options"]


class FakeClock:
    """Starts at the real time (the watchdog compares Asana's modified_at with the database's clock)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)


class NoLimit:
    def acquire(self, *, write: bool) -> float:
        return 0.0

    def release(self, *, write: bool) -> None:
        return None


def django_deliverer(client):
    """Asana's outbound POSTs (handshake, events) → Django's test client → the real view."""

    def deliver(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(url).path
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        response = client.post(
            path, data=body, content_type=headers.get("Content-Type", "application/json"), headers=extra
        )
        return response.status_code, dict(response.headers.items()), response.content

    return deliver


@dataclass
class World:
    tenant: Tenant
    asana: Any  # AsanaSimulator
    acumatica: Any  # AcumaticaSimulator
    clock: FakeClock
    bills_flow: Flow
    approvals_flow: Flow
    clients: flow_clients.Clients
    tasks: dict[str, str] = field(default_factory=dict)
    rsps: Any = None  # the RequestsMock the sandboxes are mounted on (e.g. to pass a served agent through)

    def bill_task(
        self,
        bill: dict,
        *,
        approval: bool = False,
        link_state: str = RecordLink.State.LINKED,
        kind: str = RecordLink.Kind.BILL,
        flow: Flow | None = None,
    ) -> tuple[str, RecordLink]:
        """A task showing the document as the bill→task flow would have written it, and its RecordLink
        with the guarded values that write recorded (Asana's time of it: the task's modified_at)."""
        is_bill = kind == RecordLink.Kind.BILL
        ref = bill["ReferenceNbr"] if is_bill else bill["OrderNbr"]
        amount = bill["Amount"] if is_bill else bill["OrderTotal"]
        vendor = bill["Vendor"] if is_bill else bill["VendorID"]
        values = {
            F["amount"]: float(amount),
            F["vendor"]: vendor,
            F["erp_reference"]: ref,
            F["approval_status"]: OPT["approval_status"]["Pending"],
        }
        gid = self.asana.add_task(
            DEMO["ap_project"],
            f"Bill {ref}",
            custom_fields=values,
            approval=approval,
            user=DEMO["connector_user"],
        )
        flow = flow or self.bills_flow
        link = RecordLink.objects.create(
            tenant=self.tenant,
            flow=flow,
            kind=kind,
            acumatica_type=bill["Type"],
            acumatica_ref=ref,
            acumatica_id=str(bill.get("id") or ""),
            asana_task_gid=gid,
            state=link_state,
            last_payload={"custom_fields": values},
        )
        mapped = binding.mapped_guards(
            flow.field_mappings.filter(direction="to_asana"), flow.erp_reference_field_gid
        )
        written = binding.guarded_values(bill, mapped, binding.guarded_paths(kind, flow.options))
        binding.record_guarded_write(
            link.pk,
            written,
            parse_asana_time(self.asana.tasks[gid]["modified_at"]),
            operation="create",
        )
        link.refresh_from_db()
        return gid, link

    def approve(self, gid: str, *, how: str = "enum", user: str = DEMO["users"]["alice"]) -> None:
        if how == "enum":
            self.asana.ui_update_task(
                gid, user, custom_fields={F["approval_status"]: OPT["approval_status"]["Approved"]}
            )
        elif how == "complete":
            self.asana.ui_update_task(gid, user, completed=True)
        else:
            self.asana.set_approval_status(gid, how, user)

    def bill(self, ref: str, type_: str = "Bill") -> dict:
        return self.acumatica.record("Bill", type_, ref)

    def record_answers(self) -> list[int]:
        """From now on, the status the product answers to each of Asana's deliveries, in order."""
        answers: list[int] = []
        real_deliver = self.asana.deliver

        def deliver(url, headers, body):
            status, out_headers, reply = real_deliver(url, headers, body)
            answers.append(status)
            return status, out_headers, reply

        self.asana.deliver = deliver
        return answers


def mapping(
    flow: Flow, path: str, gid: str, type_: str, *, precision=None, direction="to_asana", transform=""
):
    return FieldMapping.objects.create(
        flow=flow,
        source_path=path,
        asana_field_gid=gid,
        cached_type=type_,
        precision=precision,
        direction=direction,
        transform=transform,
    )


@pytest.fixture
def world(db, client, monkeypatch) -> World:
    clock = FakeClock()
    asana = build_demo(ASANA_URL, strict_contract=True, clock=clock)
    asana.deliver = django_deliverer(client)
    acumatica = acu_sim.build_demo(ACUMATICA_URL, strict_contract=True, release_polls=1)
    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline")
    asana_conn = AsanaConnection.objects.create(
        tenant=tenant,
        personal_access_token=DEMO["pat"],
        workspace_gid=DEMO["workspace"],
        connector_user_gid=DEMO["connector_user"],
        api_base_url=ASANA_URL,
    )
    acu_conn = AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url=ACUMATICA_URL,
        client_id=acu_sim.DEMO_CLIENT_ID,
        client_secret=acu_sim.DEMO_CLIENT_SECRET,
        username=acu_sim.DEMO_USER,
        password=acu_sim.DEMO_PASSWORD,
        tenant_login_name="Ridgeline",
        uses_approval_maps=False,
    )
    bills = Flow.objects.create(
        tenant=tenant,
        name="AP bills",
        kind=Flow.Kind.ACUMATICA_BILLS,
        asana_project_gid=DEMO["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
    )
    mapping(bills, "Amount", F["amount"], "number", precision=2)
    mapping(bills, "Vendor", F["vendor"], "text")
    mapping(bills, "ReferenceNbr", F["erp_reference"], "text")
    approvals_flow = Flow.objects.create(
        tenant=tenant,
        name="Bill approvals",
        kind=Flow.Kind.ASANA_APPROVALS,
        asana_project_gid=DEMO["ap_project"],
        approval_rule=Flow.ApprovalRule.ENUM_OPTION,
        approval_field_gid=F["approval_status"],
        approval_option_gid=OPT["approval_status"]["Approved"],
        options={
            "outcome_field_gid": F["document_status"],
            "outcome_options": {
                "released": OPT["document_status"]["Open"],
                "refused": OPT["document_status"]["Balanced"],
                "failed": OPT["document_status"]["Balanced"],
            },
            "release_deadline_seconds": 30,
        },
    )
    aclock = FakeClock()
    clients = flow_clients.Clients(
        tenant,
        asana=asana_client_for(asana_conn, rate_limiter=None, sleep=clock.sleep),
        acumatica=acumatica_client_for(acu_conn, rate_limiter=NoLimit(), sleep=aclock.sleep, clock=aclock),
    )
    monkeypatch.setattr(flow_clients, "clients_for", lambda tenant: clients)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        asana.mount(rsps)
        acumatica.mount(rsps)
        yield World(
            tenant=tenant,
            asana=asana,
            acumatica=acumatica,
            clock=clock,
            bills_flow=bills,
            approvals_flow=approvals_flow,
            clients=clients,
            rsps=rsps,
        )


def amount(value) -> Decimal:
    return Decimal(str(value))
