"""A new operator, through the playground, in a real browser: enters a subcontractor's bill in the
simulated Acumatica, sees its task appear on the simulated Asana board, approves it as the PM, and sees
the bill released — all through the real product. The installation is `make run`'s: Acumatica and Asana
served on loopback (Acumatica pushes each change to the console, Asana delivers webhook events by
itself, batched and signed), the Sage 100 agent served with its simulated backend, the demo tenant, its
first pass, and django-q2 in sync mode, so the receivers process what they receive in the request.

Screenshots: test-artifacts/screenshots/, and docs/images/ when PLAYGROUND_SHOTS_DIR names it (the
script sandbox/playground/screenshots.py does).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from sandbox import demo
from tests.playground.conftest import reload_urls, serve

pytestmark = pytest.mark.browser

D = asana_sim.DEMO
F = D["fields"]
SHOTS_DIR = os.environ.get("PLAYGROUND_SHOTS_DIR")


class Out:
    def write(self, text=""):
        pass

    success = warning = error = write


@pytest.fixture
def installation(live_server, settings, tmp_path):
    """`make run` in one process: sandboxes, agent, demo tenant, push and webhooks aimed at the console."""
    from integrations.asana.client import client_for
    from integrations.cli.first_pass import first_pass
    from integrations.config_io import apply_document
    from integrations.flows.inbound.watchdog import ensure_webhooks
    from integrations.models import Tenant
    from sage100_agent.config import from_dict
    from sage100_agent.server import create_app, start_in_thread

    settings.PUBLIC_BASE_URL = live_server.url
    acu, acu_base, s1 = serve(lambda base: acu_sim.build_demo(base + "/AcumaticaERP"), threads=8)
    asana, asana_base, s2 = serve(
        lambda base: asana_sim.build_demo(base + "/api/1.0", allow_localhost=True, max_delivery_failures=0),
        threads=8,
    )
    demo.seed_purchase_request(asana)
    (tmp_path / "sage").mkdir()
    agent = start_in_thread(create_app(from_dict(demo.sage_agent_config(tmp_path / "sage", 0), env={})))
    doc = demo.tenant_document()
    doc["acumatica"]["instance_url"] = acu_base + "/AcumaticaERP"
    doc["asana"]["api_base_url"] = asana_base + "/api/1.0"
    doc["sage100"]["agent_url"] = agent.url
    apply_document(doc, source="demo tenant")
    tenant = Tenant.objects.get(slug=demo.TENANT_SLUG)
    conn = tenant.acumatica
    acu.configure_push(
        f"{live_server.url}/hooks/acumatica/{conn.push_uuid}/", conn.push_header_name, conn.push_secret
    )
    first_pass(tenant, Out())  # as `connector sandbox` does once the sandboxes answer
    results = ensure_webhooks(tenant, client_for(tenant.asana, rate_limiter=None))
    assert results and asana.webhooks, [r.detail for r in results]
    asana.start_delivery(batch_delay=0.3)
    settings.SANDBOX_PLAYGROUND = True
    settings.SANDBOX_PLAYGROUND_TENANT = demo.TENANT_SLUG
    reload_urls()
    yield {"tenant": tenant, "acu": acu, "asana": asana, "base": live_server.url}
    asana.stop_delivery()
    settings.SANDBOX_PLAYGROUND = False
    reload_urls()
    agent.stop()
    s1.close()
    s2.close()


def _shot(page, shot, name: str) -> None:
    page.evaluate("document.getElementById('toast').style.display = 'none'")
    shot(name)
    if SHOTS_DIR:
        target = Path(SHOTS_DIR)
        target.mkdir(parents=True, exist_ok=True)
        top = {"x": 0, "y": 0, "width": 1600, "height": 1400}  # the tour, the bills, the board, the feed
        page.screenshot(path=str(target / f"{name}.jpg"), type="jpeg", quality=50, full_page=True, clip=top)


def _wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_new_operator_enters_a_bill_approves_its_task_and_sees_it_released(
    installation, page, shot, django_user_model
):
    from audit.models import AuditEntry
    from integrations.membership import TenantMembership
    from integrations.models import RecordLink

    tenant, acu, asana, base = (installation[k] for k in ("tenant", "acu", "asana", "base"))
    operator = django_user_model.objects.create_user(
        "olivia", "olivia@example.com", "op-pass-12345", is_staff=True
    )
    TenantMembership.objects.create(user=operator, tenant=tenant, role="operate")

    page.set_viewport_size({"width": 1600, "height": 1000})
    page.goto(f"{base}/admin/login/?next=/playground/")
    page.fill("#id_username", "olivia")
    page.fill("#id_password", "op-pass-12345")
    page.click("input[type=submit]")
    page.wait_for_selector("body[data-loaded=true]")
    assert "SIMULATED" in page.inner_text("#simulated-banner")
    assert page.locator("#tour").get_attribute("data-step") == "1"
    page.wait_for_selector(f"[data-board='{D['ap_project']}'] [data-task]")  # the first pass's tasks
    _shot(page, shot, "playground-01-overview")

    # 1. A subcontractor's bill is entered in Acumatica, through the playground's form.
    page.select_option("#bill-vendor", "SUMMITELEC")
    page.fill("#bill-amount", "7450")
    page.fill("#bill-vendor-ref", "SE-1102")
    page.fill("#bill-description", "Subcontractor progress billing, Building B electrical")
    page.click("#enter-bill button[type=submit]")
    page.wait_for_selector("#toast:has-text('entered bill')")
    ((doc_type, nbr),) = [k for k, r in acu.records["Bill"].items() if r.get("VendorRef") == "SE-1102"]
    assert acu.record("Bill", doc_type, nbr)["Amount"] == 7450.0
    page.wait_for_selector(f"tr[data-bill='Bill/{nbr}']")

    # 2. ml-connector (push → the bills flow) made its task: it appears on the board.
    card = page.locator(f"[data-board='{D['ap_project']}'] [data-task][data-name*='{nbr}']")
    card.wait_for(timeout=30_000)
    link = RecordLink.objects.get(tenant=tenant, acumatica_type="Bill", acumatica_ref=nbr)
    assert card.get_attribute("data-task") == link.asana_task_gid
    values = asana.task_values(link.asana_task_gid)
    assert values[F["amount"]] == 7450.0 and values[F["vendor"]] == "SUMMITELEC"
    assert values[F["erp_reference"]] == f"Bill/{nbr}"
    assert re.search(r"7,450\.00", card.inner_text())
    page.wait_for_selector(f"#links li[data-link='Bill/{nbr}']")
    page.wait_for_function("document.querySelector('#tour').dataset.step === '3'")
    _shot(page, shot, "playground-02-task-appeared")

    # 2b. AP corrects the amount on the bill: ml-connector carries it to the task.
    page.locator(f"tr[data-bill='Bill/{nbr}'] [data-edit-bill]").click()
    page.fill("#dlg-fields input[name=amount]", "7480")
    page.click("#dlg-ok")
    page.wait_for_selector("#toast:has-text('edited bill')")
    assert acu.record("Bill", doc_type, nbr)["Amount"] == 7480.0
    page.wait_for_function(
        f"document.querySelector(\"[data-task='{link.asana_task_gid}'] [data-field='Amount']\")"
        "?.textContent === '7,480.00'",
        timeout=30_000,
    )
    assert asana.task_values(link.asana_task_gid)[F["amount"]] == 7480.0

    # 3. The PM approves it on the board.
    card.locator("[data-approve]").click()
    page.wait_for_selector("#toast:has-text('approved')")
    assert values != asana.task_values(link.asana_task_gid)
    assert (
        asana.task_values(link.asana_task_gid)[F["approval_status"]]
        == D["options"]["approval_status"]["Approved"]
    )

    # 4. Asana delivers the event; ml-connector releases the bill; the page shows it Open.
    status = page.locator(f"tr[data-bill='Bill/{nbr}'] [data-status]")
    page.wait_for_function(
        f"document.querySelector(\"tr[data-bill='Bill/{nbr}'] [data-status]\")?.textContent === 'Open'",
        timeout=40_000,
    )
    assert status.inner_text() == "Open"
    assert acu.record("Bill", doc_type, nbr)["Status"] == "Open"
    releases = [p for m, p, s in acu.request_log if m == "POST" and p.endswith("/Bill/ReleaseBill")]
    assert len(releases) == 1, releases
    release = _wait(
        lambda: AuditEntry.objects.filter(
            tenant=tenant, operation="bill.release", status="succeeded", record_link=link
        ).first(),
        15,
        "the release's audit entry",
    )
    assert release.inbound_event is not None and release.inbound_event.source == "asana_webhook"
    page.wait_for_selector("#feed li[data-operation='bill.release'][data-entry-status='succeeded']")

    # 5. The tour ends with the PO number Sage 100 sent back for the approved purchase request.
    pr_link = (
        RecordLink.objects.filter(tenant=tenant, kind="purchase_request").exclude(sage_po_number="").first()
    )
    assert pr_link is not None, "the first pass made no Sage PO"
    pr_card = page.locator(f"[data-task='{pr_link.asana_task_gid}'] [data-field='PO number']")
    assert pr_card.inner_text() == pr_link.sage_po_number
    page.wait_for_function("document.querySelector('#tour').dataset.step === '6'")
    _shot(page, shot, "playground-03-released")
