"""The soak's world: one tenant running every flow at once against the in-process sandboxes.

Acumatica bills and purchase orders → Asana tasks (poll + push), Asana approvals → release/approve and
write-back, Asana purchase requests → Sage 100 POs through a real Simulated agent on loopback. Asana's
webhook deliveries and Acumatica's pushes reach the real views through Django's test client; whatever
the views and the scheduler enqueue lands in `World.queue` (async_task is replaced), so the soak's
scheduler decides which "worker" runs what, and when. One fake clock drives the sandboxes, the
connector's `timezone.now`, the clients' sleeps and django-q2's schedules.

Fixtures come from the flow suites (clock, deliverer, agent, purchase-request mappings); only the
combination lives here.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import responses

from integrations.models import Flow, Tenant
from mappings.models import FieldMapping, ValueMapping
from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from sandbox.demo import connect_sandboxes
from tests.flows.documents.test_documents_support import ACU_URL, ASANA_URL, PUSH_SECRET, Clock, D, F
from tests.flows.inbound.harness import NoLimit, django_deliverer
from tests.sage100.conftest import agent_config, make_connection, start_agent
from tests.sage100.flow_harness import configure as configure_purchase_requests

PUSH_HEADER = "X-ML-Connector-Secret"
STATUS_OPTIONS = D["options"]["document_status"]
# Acumatica status → the "Document status" option; "On Hold" is a disabled option in the demo Asana,
# so documents on hold are quarantined with that reason (a visible, expected refusal).
BILL_STATUSES = {
    "Balanced": "Balanced",
    "Pending Approval": "Balanced",
    "Open": "Open",
    "Closed": "Closed",
    "On Hold": "On Hold",
}
PO_STATUSES = {**BILL_STATUSES, "Completed": "Closed"}


@dataclass
class World:
    tenant: Tenant
    clock: Clock
    asana: Any  # AsanaSimulator
    acumatica: Any  # AcumaticaSimulator
    agent: Any  # RunningAgent
    agent_dir: Any
    bills: Flow
    orders: Flow
    approvals: Flow
    requests: Flow
    memo_field: str
    queue: list[tuple[str, tuple, dict]] = field(default_factory=list)
    agent_url: str = ""

    @property
    def backend(self):
        return self.agent.backend

    def agent_down(self) -> None:
        self.agent.stop()

    def agent_up(self) -> None:
        from sage100_agent.server import create_app, start_in_thread

        if self.agent._thread.is_alive():
            return
        for _ in range(50):  # the port may linger for a moment after the listener closed
            try:
                self.agent = start_in_thread(create_app(agent_config(self.agent_dir)), port=self.agent.port)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the Sage 100 agent could not listen on its port again")


def _document_flow(tenant: Tenant, name: str, kind: str, fields: list[tuple], statuses: dict) -> Flow:
    flow = Flow.objects.create(
        tenant=tenant,
        name=name,
        kind=kind,
        asana_project_gid=D["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
    )
    for path, gid, type_, precision in fields:
        FieldMapping.objects.create(
            flow=flow, source_path=path, asana_field_gid=gid, cached_type=type_, precision=precision
        )
    status = FieldMapping.objects.create(
        flow=flow, source_path="Status", asana_field_gid=F["document_status"], cached_type="enum"
    )
    for value, option in statuses.items():
        ValueMapping.objects.create(
            tenant=tenant, field_mapping=status, source_value=value, target_value=STATUS_OPTIONS[option]
        )
    return flow


def configure(tenant: Tenant, memo_field: str) -> tuple[Flow, Flow, Flow, Flow]:
    bills = _document_flow(
        tenant,
        "AP bills",
        Flow.Kind.ACUMATICA_BILLS,
        [
            ("Amount", F["amount"], "number", 2),
            ("DueDate", F["due_date"], "date", None),
            ("Vendor", F["vendor"], "text", None),
        ],
        BILL_STATUSES,
    )
    orders = _document_flow(
        tenant,
        "Purchase orders",
        Flow.Kind.ACUMATICA_PURCHASE_ORDERS,
        [("OrderTotal", F["amount"], "number", 2), ("VendorID", F["vendor"], "text", None)],
        PO_STATUSES,
    )
    approvals = Flow.objects.create(
        tenant=tenant,
        name="Approvals",
        kind=Flow.Kind.ASANA_APPROVALS,
        asana_project_gid=D["ap_project"],
        approval_rule=Flow.ApprovalRule.ENUM_OPTION,
        approval_field_gid=F["approval_status"],
        approval_option_gid=D["options"]["approval_status"]["Approved"],
        options={"release_deadline_seconds": 30, "po_action": "Approve"},
    )
    FieldMapping.objects.create(
        flow=approvals,
        source_path="Description",
        asana_field_gid=memo_field,
        cached_type="text",
        direction=FieldMapping.Direction.TO_ERP,
    )
    return bills, orders, approvals, configure_purchase_requests(tenant)


def build_world(*, client, tmp_path, monkeypatch, seed: int, strict_contract: bool) -> Any:
    """A generator fixture body: yields the World with the sandboxes mounted, cleans up after."""
    from django_q import scheduler as q_scheduler
    from django_q import tasks as q_tasks

    from integrations.acumatica import client as acu_client_module
    from integrations.asana import client as asana_client_module
    from integrations.flows.inbound import watchdog
    from integrations.flows.registry import ensure_all
    from integrations.sage100 import client as sage_client_module
    from integrations.sage100.client import client_for as sage_client_for

    clock = Clock(now=float(int(time.time())))
    monkeypatch.setattr("django.utils.timezone.now", clock.dt)

    asana = asana_sim.build_demo(ASANA_URL, strict_contract=strict_contract, clock=clock)
    asana.deliver = django_deliverer(client)
    memo = asana.add_custom_field("Memo", "text", projects=(D["ap_project"],))
    acumatica = acu_sim.build_demo(
        ACU_URL,
        strict_contract=strict_contract,
        clock=clock.dt,
        release_polls=1,
        operation_seconds=60,
        seed=seed,
        seat_limit=1000,
    )
    acumatica.deliver = django_deliverer(client)
    asana.keep_dispatched = acumatica.keep_dispatched = True  # the invariants count applied writes
    agent_dir = tmp_path / "agent"
    agent_dir.mkdir()
    agent = start_agent(agent_dir)

    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline Builders")
    acu_conn, _ = connect_sandboxes(
        tenant,
        ACU_URL,
        ASANA_URL,
        acumatica={
            "tenant_login_name": "Ridgeline",
            "push_header_name": PUSH_HEADER,
            "push_secret": PUSH_SECRET,
            "uses_approval_maps": True,
        },
        asana={"connector_user_gid": D["connector_user"]},
    )
    make_connection(tenant, agent.url)
    bills, orders, approvals, requests_flow = configure(tenant, memo)
    acumatica.configure_push(
        f"http://testserver/hooks/acumatica/{acu_conn.push_uuid}/", PUSH_HEADER, PUSH_SECRET, auto=False
    )

    # Every client a worker builds runs on the soak's clock, with no local rate budget file.
    real_acu, real_asana = acu_client_module.client_for, asana_client_module.client_for

    def acu_client_for(connection, **kwargs):
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("rate_limiter", NoLimit())
        return real_acu(connection, **kwargs)

    def asana_client_for(connection, **kwargs):
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("rate_limiter", None)
        return real_asana(connection, **kwargs)

    monkeypatch.setattr(acu_client_module, "client_for", acu_client_for)
    monkeypatch.setattr(asana_client_module, "client_for", asana_client_for)
    monkeypatch.setattr(
        sage_client_module,
        "client_for",
        lambda connection, **kw: sage_client_for(connection, sleep=clock.sleep),
    )

    world = World(
        tenant=tenant,
        clock=clock,
        asana=asana,
        acumatica=acumatica,
        agent=agent,
        agent_dir=agent_dir,
        bills=bills,
        orders=orders,
        approvals=approvals,
        requests=requests_flow,
        memo_field=memo,
    )

    def enqueue(func: Any, *args: Any, **kwargs: Any) -> str:
        kwargs.pop("q_options", None)
        kwargs.pop("task_name", None)
        name = func if isinstance(func, str) else f"{func.__module__}.{func.__name__}"
        world.queue.append((name, args, kwargs))
        return uuid.uuid4().hex  # django-q2 logs it as a human hash

    monkeypatch.setattr(q_tasks, "async_task", enqueue)
    monkeypatch.setattr(q_scheduler, "async_task", enqueue)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        asana.mount(rsps)
        acumatica.mount(rsps)
        rsps.add_passthru("http://127.0.0.1")
        ensure_all()
        watchdog.ensure_webhooks(tenant, asana_client_for(tenant.asana))
        asana.deliver_pending_events()  # the first heartbeats
        try:
            yield world
        finally:
            world.agent.stop()
