"""The operator's journey in a real browser: log in, create a tenant with its connections against the
sandboxes, test the connections, create the bills flow, discover and pick its Asana fields by name
(a wrong type refused), sync with those mappings, open a bill's lineage, replay it with the diff
preview, see a failing webhook on the dashboard. Each step asserts its effect (rows, sandbox state)."""

from __future__ import annotations

import re

import pytest

from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim

pytestmark = pytest.mark.browser

D = asana_sim.DEMO
F = D["fields"]
# Source path → the Asana field the operator picks for it, by name (what the page shows).
PICKS = {
    "Amount": "Amount (number)",
    "DueDate": "Due date (date)",
    "Vendor": "Vendor (text)",
    "ReferenceNbr": "ERP reference (text)",
}


def _run_action(page, base: str, model: str, pk: int, action: str) -> None:
    """Tick one row of a changelist, choose the action, press Go."""
    page.goto(f"{base}/admin/integrations/{model}/")
    page.check(f"input[name=_selected_action][value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def _log_in(page, base: str, shot) -> None:
    page.goto(f"{base}/admin/login/")
    shot("01-login")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")


def _create_tenant(page, base: str, shot, sandboxes) -> None:
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


def _test_connections(page, base: str, shot, tenant) -> None:
    """'Test connections' on the tenant list: read-only calls, one OK line per system, verdicts stored."""
    _run_action(page, base, "tenant", tenant.pk, "test_connections")
    page.wait_for_selector(".messagelist")
    messages = page.inner_text(".messagelist")  # the admin capitalises each message's first letter
    assert "FAILED" not in messages, messages
    for system in ("acumatica", "asana"):
        assert re.search(rf"ridgeline · {system}: OK \(\d+ checks\)", messages, re.I), messages
    shot("03-test-connections")
    tenant.acumatica.refresh_from_db()
    tenant.asana.refresh_from_db()
    for conn in (tenant.acumatica, tenant.asana):
        assert conn.last_check_ok is True and conn.last_checked_at is not None, conn.last_check_message


def _create_flow(page, base: str, tenant):
    """The AP bills flow on Flows → Add: kind, project, ERP reference field; no field mappings yet."""
    from integrations.models import Flow

    page.goto(f"{base}/admin/integrations/flow/add/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.fill("#id_name", "AP bills")
    page.select_option("#id_kind", "acumatica_bills")
    page.fill("#id_asana_project_gid", D["ap_project"])
    page.fill("#id_erp_reference_field_gid", F["erp_reference"])
    page.fill("#id_status_filter", '["Balanced"]')
    page.fill("#id_task_name_template", "Bill {ReferenceNbr} · {Vendor} · {Amount}")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success, .errornote")
    assert not page.locator(".errornote").count(), page.inner_text("#content")[:3000]
    flow = Flow.objects.get(tenant=tenant, name="AP bills")
    assert flow.kind == "acumatica_bills" and flow.status_filter == ["Balanced"]
    assert not flow.field_mappings.exists()
    return flow


def _discover_fields(page, base: str, shot, flow) -> None:
    """'Discover Asana fields' on the flow: a wrong type is refused with its reason, then the four
    fields picked by name are stored by GID."""
    from mappings.models import FieldMapping

    _run_action(page, base, "flow", flow.pk, "discover_asana_fields")
    page.wait_for_selector("select[name=field__Amount]")
    # The page lists the project's fields by name; the date field cannot hold an amount.
    page.select_option("select[name=field__Amount]", label="Due date (date) ✗")
    page.click("input[type=submit][value='Store mappings']")
    refusal = page.locator("tr", has=page.locator("select[name=field__Amount]")).locator(".errornote")
    assert re.search(r"Amount holds a number; 'Due date' is a date field", refusal.inner_text())
    shot("04-discover-refused")
    assert not FieldMapping.objects.filter(flow=flow).exists()  # nothing of the refused row stored

    for path, label in PICKS.items():
        page.select_option(f"select[name=field__{path}]", label=label)
    shot("05-discover-fields")
    page.click("input[type=submit][value='Store mappings']")
    page.wait_for_selector(".messagelist")  # back on the flow, with what was stored
    assert "Stored 4 mapping(s)" in page.inner_text(".messagelist")
    stored = {
        m.source_path: (m.asana_field_gid, m.cached_type, m.precision)
        for m in FieldMapping.objects.filter(flow=flow)
    }
    assert stored == {
        "Amount": (F["amount"], "number", 2),
        "DueDate": (F["due_date"], "date", None),
        "Vendor": (F["vendor"], "text", None),
        "ReferenceNbr": (F["erp_reference"], "text", None),
    }
    # the stored mappings, as the console lists them
    page.goto(f"{base}/admin/mappings/fieldmapping/?flow__id__exact={flow.pk}")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 4
    for gid in (F["amount"], F["due_date"], F["vendor"], F["erp_reference"]):
        assert page.locator("#result_list", has_text=gid).count() == 1
    shot("06-mappings-stored")


@pytest.mark.django_db(transaction=True)
def test_operator_journey(live_server, page, shot, sandboxes, django_user_model):
    from audit.models import SyncRun
    from integrations.models import AsanaWebhook, RecordLink, Tenant

    django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
    base = live_server.url

    _log_in(page, base, shot)
    _create_tenant(page, base, shot, sandboxes)
    tenant = Tenant.objects.get(slug="ridgeline")
    assert tenant.acumatica.client_secret == acu_sim.DEMO_CLIENT_SECRET  # stored, encrypted at rest
    _test_connections(page, base, shot, tenant)
    flow = _create_flow(page, base, tenant)
    _discover_fields(page, base, shot, flow)

    # sync now (the flow's own action), through the real HTTP sandboxes, with the mappings just picked
    _run_action(page, base, "flow", flow.pk, "sync_now")
    page.wait_for_selector(".messagelist")
    shot("07-sync-queued")
    run = SyncRun.objects.get(flow=flow, trigger="manual")
    assert run.status in ("succeeded", "partial") and run.counts["created"] >= 1
    link = RecordLink.objects.get(tenant=tenant, acumatica_ref="000001")
    # the task carries the bill's values in exactly the fields picked on the discovery page
    bill = sandboxes["acu"].record("Bill", "Bill", "000001")
    assert sandboxes["asana"].task_values(link.asana_task_gid) == {
        F["amount"]: bill["Amount"],
        F["due_date"]: bill["DueDate"].date().isoformat(),
        F["vendor"]: bill["Vendor"],
        # the flow's ERP reference field holds the natural key (it wins over the ReferenceNbr mapping)
        F["erp_reference"]: "Bill/000001",
    }

    # the record's lineage
    page.goto(f"{base}/admin/integrations/recordlink/")
    page.locator("tr", has_text="000001").get_by_text("timeline").click()
    page.wait_for_selector("#timeline")
    assert page.locator(".permalink").get_attribute("href") == (
        f"https://app.asana.com/0/{D['ap_project']}/{link.asana_task_gid}"
    )
    assert page.locator("#timeline .timeline-audit").count() >= 1
    shot("08-lineage")

    # someone edits the amount in Asana; replay shows the diff, then puts it right through the queue
    from integrations.asana.client import client_for

    client_for(tenant.asana, rate_limiter=None).update_task(
        link.asana_task_gid, {"custom_fields": {F["amount"]: 1.0}}
    )
    page.click("#replay-record")
    page.wait_for_selector("#replay-diff")
    assert re.search(r"18450", page.inner_text("#replay-diff"))
    shot("09-replay-preview")
    page.click("#confirm-replay")
    page.wait_for_selector("#run-progress")
    assert page.inner_text("#run-status") == "Succeeded"
    shot("10-replay-run")
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
    shot("11-dashboard")
