"""A new operator sets up a customer with the wizard in a real browser, from an empty database to the
flows switched on, against the sandboxes served over HTTP: every step's effect is asserted (rows,
sandbox state), the fit report is checked to have written nothing to either system, the webhook's
handshake and a live push verify step 5, and the dashboard is green where things work.

`python docs/screenshots.py` runs this test with WIZARD_SCREENSHOTS set, which puts each step's
screenshot into docs/images/ for the operator guide.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim

pytestmark = pytest.mark.browser

D = asana_sim.DEMO
F = D["fields"]
GUIDE_SHOTS = os.environ.get("WIZARD_SCREENSHOTS", "")
JPEG_QUALITY = 60


@pytest.fixture
def step_shot(page, shot):
    """The suite's screenshot, and the guide's copy when docs/screenshots.py asked for one."""

    def take(name: str) -> None:
        shot(f"wizard-{name}")
        if GUIDE_SHOTS:
            Path(GUIDE_SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(
                path=str(Path(GUIDE_SHOTS) / f"wizard-{name}.jpg"),
                type="jpeg",
                quality=JPEG_QUALITY,
                full_page=True,
            )

    return take


def _writes(sim, since: int) -> list:
    sign = ("/identity/connect/token", "/entity/auth/login", "/entity/auth/logout")
    return [
        (m, p)
        for m, p, _s in sim.request_log[since:]
        if m in ("POST", "PUT", "PATCH", "DELETE") and not p.startswith(sign)
    ]


@pytest.mark.django_db(transaction=True)
def test_a_new_operator_sets_up_a_customer(
    live_server, page, step_shot, sandboxes, django_user_model, settings
):
    from integrations.models import AsanaWebhook, Flow, SetupProgress, Tenant

    base = live_server.url.replace("localhost", "127.0.0.1")
    settings.PUBLIC_BASE_URL = base  # where the sandboxes deliver webhooks and pushes
    django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
    acu, asana = sandboxes["acu"], sandboxes["asana"]
    assert not Tenant.objects.exists()

    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    assert "No active tenants yet" in page.inner_text("#no-tenants")
    page.click("#no-tenants a")
    page.click("#setup-new")

    # 1. company and Acumatica: the versions read from the instance, the credentials tested at once
    page.fill("#id_name", "Ridgeline Builders")
    page.fill("#id_slug", "ridgeline")
    page.fill("#id_instance_url", sandboxes["acu_url"])
    page.click("#discover")
    page.wait_for_selector("#endpoint-info")
    assert "24.200.001" in page.inner_text("#endpoint-info")
    page.fill("#id_client_id", acu_sim.DEMO_CLIENT_ID)
    page.fill("#id_client_secret", acu_sim.DEMO_CLIENT_SECRET)
    page.fill("#id_username", acu_sim.DEMO_USER)
    page.fill("#id_password", "a wrong password")
    page.fill("#id_tenant_login_name", "Ridgeline")
    page.click("#save-company")
    page.wait_for_selector("#verdicts")
    refused = page.inner_text("#verdicts .verdict-bad")
    assert "Not verified — authentication" in refused and "What to do" in refused
    assert not page.locator("#next").count()
    page.fill("#id_password", acu_sim.DEMO_PASSWORD)
    page.click("#save-company")
    page.wait_for_selector("#next")
    verified = page.inner_text("#verdicts")
    assert "Verified — authentication" in verified and "Verified — read Bill" in verified
    assert not page.locator("#verdicts .verdict-bad").count()
    step_shot("1-company-acumatica")
    tenant = Tenant.objects.get(slug="ridgeline")
    assert tenant.acumatica.last_check_ok is True
    page.click("#next")

    # 2. Asana: the token tested, the workspace picked from a list
    page.fill("#id_api_base_url", sandboxes["asana_url"])
    page.fill("#id_token", D["pat"])
    page.click("#test-token")
    page.wait_for_selector("#token-user")
    assert "ML Connector Bot" in page.inner_text("#token-user")
    page.select_option("#id_workspace", label="ML Demo Workspace")
    page.fill("#id_token", D["pat"])
    step_shot("2-asana")
    page.click("#save-asana")

    # 3. the bills flow: project picked by name, fields proposed by name and type
    page.wait_for_selector("#id_project")
    page.select_option("#id_project", label="AP Approvals")
    page.wait_for_selector("#flow-form select[name=field_amount]")
    assert page.locator("select[name=field_amount] option:checked").inner_text() == "Amount (number)"
    assert page.locator("select[name=field_reference] option:checked").inner_text() == "ERP reference (text)"
    page.select_option("select[name=section]", label="Awaiting approval")
    page.select_option("select[name=field_amount]", label="Due date (date)")  # a mismatch, refused
    page.click("#save-flow")
    page.wait_for_selector(".errornote")
    assert "is a date field" in page.inner_text(".errornote")
    assert not Flow.objects.exists()
    step_shot("3-flow-fields")  # the proposal, with the refused choice and its reason
    page.select_option("select[name=field_amount]", label="Amount (number)")
    page.click("#save-flow")
    page.wait_for_selector("#skip-flow")  # the purchase-orders tab
    page.click("#skip-flow")

    # 4. the fit report: read-only on both systems
    acu_mark, asana_mark, tasks = len(acu.request_log), len(asana.request_log), len(asana.tasks)
    page.click("#run-fit")
    page.wait_for_selector("#fit-report")
    assert _writes(acu, acu_mark) == [] and _writes(asana, asana_mark) == []
    assert len(asana.tasks) == tasks
    report = page.inner_text("#fit-report")
    assert "Bill/000001" in report and "ReleaseBill" in report and "requests per minute" in report
    assert page.locator("tr[data-key='Bill/000001']").inner_text().count("create") == 1
    step_shot("4-fit-report")
    assert not Flow.objects.filter(enabled=True).exists()
    page.click("#next")

    # 5. push settings to paste, then the switch; the webhook verified by its handshake
    page.wait_for_selector("#push-settings")
    push_url = page.inner_text("#push-url")
    header, secret = page.inner_text("#push-header"), page.inner_text("#push-secret")  # shown this once
    assert push_url == f"{base}/hooks/acumatica/{tenant.acumatica.push_uuid}/"
    page.click("#switch-on")
    page.wait_for_selector("#finish")
    assert set(Flow.objects.filter(tenant=tenant).values_list("enabled", flat=True)) == {True}
    assert "handshake done" in page.inner_text("#webhook-states")
    assert AsanaWebhook.objects.get(tenant=tenant).state == "active" and len(asana.webhooks) == 1
    # the operator pastes the URL and header into SM302000; a bill changes; the push verifies live
    assert not page.locator("#push-secret").count()  # not shown again after the switch
    acu.control("configure_push", url=push_url, header_name=header, secret=secret)
    acu.control(
        "person_edit_bill", type="Bill", nbr="000001", Description="Ready-mix concrete, Lot 14 (rev. 2)"
    )
    page.click("#verify")
    page.wait_for_selector("#push-state .rag-green")
    step_shot("5-switch-on")
    assert SetupProgress.objects.get(tenant=tenant).switched_on_at is not None

    # the first dashboard: the setup tile green, no red "never"
    page.click("#finish")
    page.wait_for_selector("#dashboard")
    table = page.locator("table[data-tenant=ridgeline]")
    assert "rag-green" in table.locator("td.health-setup .rag").get_attribute("class")
    flows = page.inner_text("table.flow-health")
    assert "never" not in flows and re.search(r"first pass due|s ago|min ago", flows)
    step_shot("6-first-dashboard")
