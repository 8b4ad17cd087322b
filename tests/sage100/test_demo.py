"""`make run`'s demo: the demo tenant document + the sandboxes as `connector sandbox` builds them → the
seeded purchase request becomes a Sage PO and its number shows in the task; the webhook dispatch point
routes purchase-request projects to this flow."""

from __future__ import annotations

import responses
from django_q.models import Schedule

from integrations.config_io import apply_document
from integrations.flows import registry
from integrations.flows.purchase_requests import tasks as sage_tasks
from integrations.models import Flow, Sage100Connection
from sage100_agent.config import from_dict
from sage100_agent.server import create_app, start_in_thread
from sandbox import asana as asana_sim
from sandbox import demo


def test_demo_purchase_request_becomes_a_po_with_its_number_in_the_task(db, tmp_path):
    apply_document(demo.tenant_document(), source="demo tenant")
    config = demo.sage_agent_config(tmp_path, port=0)
    agent = start_in_thread(create_app(from_dict(config, env={})), port=0)
    Sage100Connection.objects.filter(tenant__slug=demo.TENANT_SLUG).update(agent_url=agent.url)
    asana = asana_sim.build_demo(demo.asana_url(), allow_localhost=True)
    gid = demo.seed_purchase_request(asana)
    try:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            asana.mount(rsps)
            rsps.add_passthru(agent.url)
            assert sage_tasks.ensure_schedules() == ["sage100-purchase-requests-poll every 2 min: created"]
            assert sage_tasks.ensure_schedules() == ["sage100-purchase-requests-poll every 2 min: kept"]
            assert (
                Schedule.objects.filter(func="integrations.flows.purchase_requests.tasks.poll_all").count()
                == 1
            )
            report = sage_tasks.poll_all()
            assert "created" in report, report
    finally:
        agent.stop()
    f = asana_sim.DEMO["fields"]
    values = asana.task_values(gid)
    assert values[f["po_number"]] == "0000100"
    assert values[f["vendor"]] == "ABC Concrete Supply"
    assert values[f["sage_status"]] == asana_sim.DEMO["options"]["sage_status"]["PO created"]
    assert any("0000100" in s["text"] for s in asana.stories.values() if s["task"] == gid)


def test_webhook_dispatch_routes_purchase_request_projects_here():
    assert Flow.Kind.ASANA_PURCHASE_REQUESTS in Flow.TASK_EVENT_KINDS
    assert registry.task_event_handler(Flow.Kind.ASANA_PURCHASE_REQUESTS) is sage_tasks.handle_task_change
