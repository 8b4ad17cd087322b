"""Dry run from the console (the flow's own plan, nothing written) and the run progress page."""

from __future__ import annotations

from django.urls import reverse

from audit.models import ApiCall, AuditEntry, SyncRun
from integrations.models import Cursor, RecordLink

from ..flows.documents.test_documents_support import *  # noqa: F403
from .support import *  # noqa: F403


def test_dry_run_page_shows_the_plan_and_writes_nothing(client, operator, bills_flow, mounted, asana):
    client.force_login(operator)
    before = len(asana.requests)

    page = client.get(reverse("admin:integrations_flow_dry_run", args=[bills_flow.pk]))

    html = page.content.decode()
    assert page.status_code == 200 and 'id="plan"' in html
    assert "create" in html and "Bill/000001" in html
    assert all(r.method == "GET" for r in asana.requests[before:])
    assert not RecordLink.objects.exists() and not AuditEntry.objects.exists()
    assert not ApiCall.objects.exists() and not Cursor.objects.exists() and not SyncRun.objects.exists()


def test_dry_run_action_redirects_to_the_page(client, operator, bills_flow):
    client.force_login(operator)
    response = client.post(
        reverse("admin:integrations_flow_changelist"),
        {"action": "dry_run", "_selected_action": [str(bills_flow.pk)]},
    )
    assert response.status_code == 302
    assert response.url == reverse("admin:integrations_flow_dry_run", args=[bills_flow.pk])


def test_running_run_page_refreshes_itself_and_shows_progress(admin_client, docs_tenant):
    run = SyncRun.objects.create(tenant=docs_tenant, trigger="backfill", progress_done=40, progress_total=160)
    page = admin_client.get(reverse("admin:audit_syncrun_progress", args=[run.pk]))
    html = page.content.decode()
    assert 'http-equiv="refresh"' in html and "40 / 160" in html and "width:25%" in html
    SyncRun.objects.filter(pk=run.pk).update(status="succeeded", progress_done=160)
    html = admin_client.get(reverse("admin:audit_syncrun_progress", args=[run.pk])).content.decode()
    assert 'http-equiv="refresh"' not in html
    listing = admin_client.get(reverse("admin:audit_syncrun_changelist")).content.decode()
    assert reverse("admin:audit_syncrun_progress", args=[run.pk]) in listing
