"""An auditor in a real browser, against the served sandboxes: a period of approvals and releases made by
the flows (a plain release, a change after approval, a refusal, an operator's replay), a reconciliation
that finds what fell between the systems; the auditor reads the reconciliation page (no fix offered),
opens a lineage, exports the PDF evidence (its hash is the one recorded) and verifies it.

With ML_CONNECTOR_DOCS_SHOTS=<dir> (docs/screenshots/take_auditor_shots.py sets it) the reconciliation
page, the export page and the PDF's first page are copied there for the operator guide.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from audit.models import EvidenceExport, ReconciliationRun
from integrations.acumatica.client import client_for as acumatica_client_for
from integrations.asana.client import client_for as asana_client_for
from integrations.flows import clients as flow_clients
from integrations.flows import reconciliation
from integrations.flows.approvals.release import handle_task_change
from integrations.models import AcumaticaConnection, AsanaConnection, Flow, Tenant, TenantMembership
from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from tests.flows.evidence.period import build_period
from tests.flows.inbound.harness import FakeClock, World, mapping

from .conftest import SHOTS

pytestmark = pytest.mark.browser

D = asana_sim.DEMO
F = D["fields"]
OPT = D["options"]


def served_world(sandboxes) -> World:
    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline Builders")
    asana_conn = AsanaConnection.objects.create(
        tenant=tenant,
        personal_access_token=D["pat"],
        workspace_gid=D["workspace"],
        connector_user_gid=D["connector_user"],
        api_base_url=sandboxes["asana_url"],
    )
    acu_conn = AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url=sandboxes["acu_url"],
        client_id=acu_sim.DEMO_CLIENT_ID,
        client_secret=acu_sim.DEMO_CLIENT_SECRET,
        username=acu_sim.DEMO_USER,
        password=acu_sim.DEMO_PASSWORD,
        tenant_login_name="Ridgeline",
    )
    bills = Flow.objects.create(
        tenant=tenant,
        name="AP bills",
        kind=Flow.Kind.ACUMATICA_BILLS,
        asana_project_gid=D["ap_project"],
        erp_reference_field_gid=F["erp_reference"],
    )
    mapping(bills, "Amount", F["amount"], "number", precision=2)
    mapping(bills, "Vendor", F["vendor"], "text")
    mapping(bills, "ReferenceNbr", F["erp_reference"], "text")
    approvals_flow = Flow.objects.create(
        tenant=tenant,
        name="Bill approvals",
        kind=Flow.Kind.ASANA_APPROVALS,
        asana_project_gid=D["ap_project"],
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
    clients = flow_clients.Clients(
        tenant, asana=asana_client_for(asana_conn), acumatica=acumatica_client_for(acu_conn)
    )
    return World(
        tenant=tenant,
        asana=sandboxes["asana"],
        acumatica=sandboxes["acu"],
        clock=FakeClock(),
        bills_flow=bills,
        approvals_flow=approvals_flow,
        clients=clients,
    )


def docs_copy(name: str, source: Path) -> None:
    target = os.environ.get("ML_CONNECTOR_DOCS_SHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, Path(target) / name)


def test_auditor_reads_reconciliation_and_exports_verified_evidence(
    live_server, page, shot, sandboxes, django_user_model, tmp_path
):
    sandboxes["acu"].operation_seconds = 0.2  # a release runs server-side for a moment, not 2 s
    w = served_world(sandboxes)
    build_period(w, deliver=lambda gid: handle_task_change(w.approvals_flow, gid, clients=w.clients))
    first = reconciliation.reconcile(w.tenant)
    # What falls between the systems after the period: a bill nobody linked, an approval never acted on.
    w.acumatica.add_bill("RIVERLUMBER", 310.25, vendor_ref="RL-9")
    bill = w.acumatica.add_bill("HEAVYRENT", 2250.00, vendor_ref="HR-4")
    gid, _ = w.bill_task(bill)
    w.approve(gid)
    run = reconciliation.reconcile(w.tenant)
    assert run.totals["approved_unreleased"] == {"count": 1, "amount": "2250.00"}
    assert run.totals["unlinked_document"]["count"] == first.totals["unlinked_document"]["count"] + 1

    auditor = django_user_model.objects.create_user(
        "audrey", "a@ridgeline.test", "audit-pass-123", is_staff=True
    )
    TenantMembership.objects.create(user=auditor, tenant=w.tenant, role="audit")
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "audrey")
    page.fill("#id_password", "audit-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard, #content-main")

    # The reconciliation page: totals per class, the trend of both runs, each row linking to lineage.
    page.goto(f"{base}/admin/audit/reconciliationrun/latest/")
    page.wait_for_selector("#reconciliation-totals")
    row = page.locator("#reconciliation-totals tr[data-class=approved_unreleased]")
    assert row.locator(".count").inner_text() == "1" and row.locator(".amount").inner_text() == "2250.00"
    assert (
        page.locator("#reconciliation-rows tr[data-class=unlinked_document]").count()
        == run.totals["unlinked_document"]["count"]
    )
    assert page.locator("#reconciliation-trend th a").count() == 2
    assert page.locator(".fix-link").count() == 0 and page.locator("#run-now").count() == 0  # read-only
    path = shot("12-reconciliation")
    docs_copy("12-reconciliation.jpg", path.with_suffix(".jpg"))
    page.locator("#reconciliation-rows tr[data-class=approved_unreleased] .lineage-link").click()
    page.wait_for_selector("text=Lineage")
    assert "bill.release" not in page.inner_text("#content")  # never acted on: that is the difference

    # The evidence export: a PDF of today's period; the file's hash is the one recorded.
    today = timezone.localdate()
    page.goto(f"{base}/admin/audit/evidenceexport/export/")
    page.select_option("#id_tenant", str(w.tenant.pk))
    page.fill("#id_period_start", str(today - timedelta(days=1)))
    page.fill("#id_period_end", str(today))
    page.select_option("#id_format", "pdf")
    path = shot("13-evidence-export")
    docs_copy("13-evidence-export.jpg", path.with_suffix(".jpg"))
    with page.expect_download() as download:
        page.click("#evidence-submit")
    pdf = tmp_path / "evidence.pdf"
    download.value.save_as(pdf)
    content = pdf.read_bytes()
    record = EvidenceExport.objects.get(format="pdf")
    assert record.sha256 == hashlib.sha256(content).hexdigest()
    assert (record.created_by, record.documents, record.exceptions) == ("audrey", 4, 3)

    page.goto(f"{base}/admin/audit/evidenceexport/verify/")
    page.set_input_files("#id_file", str(pdf))
    page.click("#verify-submit")
    page.wait_for_selector("#verify-ok")
    shot("14-evidence-verify")
    assert ReconciliationRun.objects.count() == 2  # the auditor's visit changed nothing

    if shutil.which("pdftoppm"):
        subprocess.run(
            [
                "pdftoppm",
                "-f",
                "1",
                "-l",
                "1",
                "-png",
                "-r",
                "70",
                "-singlefile",
                str(pdf),
                str(SHOTS / "15-evidence-pdf"),
            ],
            check=True,
            timeout=60,
        )
        first_page = SHOTS / "15-evidence-pdf.png"
        assert first_page.read_bytes().startswith(b"\x89PNG")
        docs_copy("15-evidence-pdf.png", first_page)
