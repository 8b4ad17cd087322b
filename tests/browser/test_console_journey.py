"""The operator's journey in a real browser: log in, create a tenant with its connections against the
sandboxes, sync, open a bill's lineage, replay it with the diff preview, see a failing webhook."""

from __future__ import annotations

import re

import pytest

from integrations.sandbox import acumatica as acu_sim
from integrations.sandbox import asana as asana_sim

pytestmark = pytest.mark.browser

D = asana_sim.DEMO
F = D["fields"]


def _map_fields(tenant):
    """The AP bills flow with its mappings (the discovery screen is the mappings owner's page)."""
    from integrations.models import Flow
    from mappings.models import FieldMapping

    flow = Flow.objects.create(
        tenant=tenant,
        name="AP bills",
        kind="acumatica_bills",
        asana_project_gid=D["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
        task_name_template="Bill {ReferenceNbr} · {Vendor} · {Amount}",
        status_filter=["Balanced"],
    )
    for path, gid, name, kind, precision in (
        ("Amount", F["amount"], "Amount", "number", 2),
        ("DueDate", F["due_date"], "Due date", "date", None),
        ("Vendor", F["vendor"], "Vendor", "text", None),
    ):
        FieldMapping.objects.create(
            flow=flow,
            source_path=path,
            asana_field_gid=gid,
            cached_name=name,
            cached_type=kind,
            precision=precision,
        )
    return flow


@pytest.mark.django_db(transaction=True)
def test_operator_journey(live_server, page, shot, sandboxes, django_user_model):
    from audit.models import SyncRun
    from integrations.models import AsanaWebhook, RecordLink, Tenant

    django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
    base = live_server.url

    # log in
    page.goto(f"{base}/admin/login/")
    shot("01-login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")

    # create a tenant and its connections against the sandboxes
    page.goto(f"{base}/admin/integrations/tenant/add/")
    page.fill("#id_name", "Ridgeline Builders")
    page.fill("#id_slug", "")  # prepopulated from the name: replace it
    page.fill("#id_slug", "ridgeline")
    page.get_by_text("Add another Acumatica connection").click()
    page.fill("#id_acumatica-0-instance_url", sandboxes["acu_url"])
    page.fill("#id_acumatica-0-client_id", acu_sim.DEMO_CLIENT_ID)
    page.fill("#id_acumatica-0-client_secret", acu_sim.DEMO_CLIENT_SECRET)
    page.fill("#id_acumatica-0-username", acu_sim.DEMO_USER)
    page.fill("#id_acumatica-0-password", acu_sim.DEMO_PASSWORD)
    page.fill("#id_acumatica-0-tenant_login_name", "Ridgeline")
    page.get_by_text("Add another Asana connection").click()
    page.fill("#id_asana-0-api_base_url", sandboxes["asana_url"])
    page.fill("#id_asana-0-personal_access_token", D["pat"])
    page.fill("#id_asana-0-workspace_gid", D["workspace"])
    page.fill("#id_asana-0-connector_user_gid", D["connector_user"])
    shot("02-tenant-form")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success, .errornote")
    assert not page.locator(".errornote").count(), page.inner_text("#content")[:3000]
    tenant = Tenant.objects.get(slug="ridgeline")
    assert tenant.acumatica.client_secret == acu_sim.DEMO_CLIENT_SECRET  # stored, encrypted at rest
    flow = _map_fields(tenant)

    # sync now (the flow's own action), through the real HTTP sandboxes
    page.goto(f"{base}/admin/integrations/flow/")
    page.check(f"input[name=_selected_action][value='{flow.pk}']")
    page.select_option("select[name=action]", "sync_now")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    shot("03-sync-queued")
    run = SyncRun.objects.get(flow=flow, trigger="manual")
    assert run.status in ("succeeded", "partial") and run.counts["created"] >= 1
    link = RecordLink.objects.get(tenant=tenant, acumatica_ref="000001")
    assert link.asana_task_gid in sandboxes["asana"].tasks

    # the record's lineage
    page.goto(f"{base}/admin/integrations/recordlink/")
    page.locator("tr", has_text="000001").get_by_text("timeline").click()
    page.wait_for_selector("#timeline")
    assert page.locator(".permalink").get_attribute("href") == (
        f"https://app.asana.com/0/{D['ap_project']}/{link.asana_task_gid}"
    )
    assert page.locator("#timeline .timeline-audit").count() >= 1
    shot("04-lineage")

    # someone edits the amount in Asana; replay shows the diff, then puts it right through the queue
    from integrations.asana.client import client_for

    client_for(tenant.asana, rate_limiter=None).update_task(
        link.asana_task_gid, {"custom_fields": {F["amount"]: 1.0}}
    )
    page.click("#replay-record")
    page.wait_for_selector("#replay-diff")
    assert re.search(r"18450", page.inner_text("#replay-diff"))
    shot("05-replay-preview")
    page.click("#confirm-replay")
    page.wait_for_selector("#run-progress")
    assert page.inner_text("#run-status") == "Succeeded"
    shot("06-replay-run")
    assert sandboxes["asana"].task_values(link.asana_task_gid)[F["amount"]] == 18450.0

    # a failing webhook turns the dashboard red, linking to the webhook list
    AsanaWebhook.objects.create(
        tenant=tenant,
        flow=flow,
        resource_gid=D["ap_project"],
        state="failing",
        last_failure_content="500 Internal Server Error",
    )
    page.goto(f"{base}/admin/")
    cell = page.locator("table[data-tenant=ridgeline] td.health-webhooks")
    assert "failing" in cell.inner_text()
    assert "rag-red" in cell.locator(".rag").get_attribute("class")
    shot("07-dashboard")
