"""`make run`'s demo starts green: once the sandboxes answer, each demo flow runs once against them, so
the first dashboard shows passes, not "never"; a flow whose system is down is red with why and what to
click (here the Sage 100 agent is not served)."""

from __future__ import annotations

import threading

import pytest

from audit.models import SyncRun
from integrations.cli.first_pass import first_pass
from integrations.config_io import apply_document
from integrations.console.dashboard import GREEN, GREY, RED, build_dashboard
from integrations.models import Flow, Tenant
from sandbox import demo


def _serve(build):
    from waitress.server import create_server

    holder = {}
    server = create_server(
        lambda env, start: holder["sim"].wsgi_app(env, start), host="127.0.0.1", port=0, threads=4
    )
    base = f"http://127.0.0.1:{server.effective_port}"
    holder["sim"] = build(base)
    threading.Thread(target=server.run, daemon=True).start()
    return holder["sim"], base, server


class Out:
    def __init__(self):
        self.lines: list[str] = []

    def write(self, text=""):
        self.lines.append(text)

    success = warning = error = write


@pytest.fixture
def demo_tenant(db, settings):
    from sandbox import acumatica as acu_sim
    from sandbox import asana as asana_sim

    settings.HTTP_MAX_RETRIES = 0
    _acu, acu_base, s1 = _serve(lambda base: acu_sim.build_demo(base + "/AcumaticaERP"))
    asana, asana_base, s2 = _serve(lambda base: asana_sim.build_demo(base + "/api/1.0"))
    doc = demo.tenant_document()
    doc["acumatica"]["instance_url"] = acu_base + "/AcumaticaERP"
    doc["asana"]["api_base_url"] = asana_base + "/api/1.0"
    doc["sage100"]["agent_url"] = "https://127.0.0.1:9"  # the agent is down
    apply_document(doc, source="demo")
    yield Tenant.objects.get(slug=demo.TENANT_SLUG), asana
    s1.close()
    s2.close()


def test_each_demo_flow_runs_once_and_the_dashboard_shows_it(demo_tenant):
    tenant, asana = demo_tenant
    out = Out()
    outcomes = {o.flow: o for o in first_pass(tenant, out)}
    bills = Flow.objects.get(tenant=tenant, kind=Flow.Kind.ACUMATICA_BILLS)
    assert outcomes[bills.name].ok, outcomes[bills.name].detail
    run = SyncRun.objects.filter(flow=bills).latest("started_at")
    assert run.status == SyncRun.Status.SUCCEEDED and run.triggered_by == "demo first pass"
    assert run.counts.get("created", 0) >= 1  # the sandbox's bills became Asana tasks
    sage = Flow.objects.get(tenant=tenant, kind=Flow.Kind.SAGE100_PO_STATUS)
    assert not outcomes[sage.name].ok and "Test connections" in outcomes[sage.name].hint
    (row,) = build_dashboard(tenants=Tenant.objects.filter(pk=tenant.pk))
    polls = {f.flow.kind: f.items["poll"] for f in row.flows}
    assert polls[Flow.Kind.ACUMATICA_BILLS].level == GREEN
    assert polls[Flow.Kind.ACUMATICA_EMPLOYEES].level == GREEN, polls[Flow.Kind.ACUMATICA_EMPLOYEES].reason
    assert polls[Flow.Kind.ASANA_APPROVALS].level == GREY
    assert polls[Flow.Kind.SAGE100_PO_STATUS].level == RED
    assert "open the flow's runs" in polls[Flow.Kind.SAGE100_PO_STATUS].reason
    assert row.items["agent"].level == RED and "unreachable" in row.items["agent"].reason
    assert any("FAILED" in line and "What to do" in line for line in out.lines)


def test_a_second_pass_creates_no_second_task(demo_tenant):
    tenant, asana = demo_tenant
    first_pass(tenant, Out())
    bills = Flow.objects.get(tenant=tenant, kind=Flow.Kind.ACUMATICA_BILLS)
    before = (
        len(asana.tasks_in_project(bills.asana_project_gid)) if hasattr(asana, "tasks_in_project") else None
    )
    first_pass(tenant, Out())
    run = SyncRun.objects.filter(flow=bills).latest("started_at")
    assert run.counts.get("created", 0) == 0
    if before is not None:
        assert len(asana.tasks_in_project(bills.asana_project_gid)) == before
