"""The auditor role in the console: evidence export and verify pages, the reconciliation report; what an
auditor may not do (fix, reconcile now, replay), what a viewer or operator may not (export), and
another tenant's objects answering 404."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry, EvidenceExport, ReconciliationDifference, ReconciliationRun
from integrations.models import Flow, RecordLink, Tenant

from .support import make_user


@pytest.fixture
def tenants(db):
    a = Tenant.objects.create(slug="alpha", name="Alpha Builders")
    b = Tenant.objects.create(slug="zebra", name="Zebra Ltd")
    return a, b


def seed(tenant: Tenant, n: int):
    flow = Flow.objects.create(tenant=tenant, name="AP bills", kind=Flow.Kind.ACUMATICA_BILLS)
    link = RecordLink.objects.create(
        tenant=tenant,
        flow=flow,
        kind="bill",
        acumatica_type="Bill",
        acumatica_ref=f"{n}01",
        asana_task_gid=f"{n}0002",
        state="linked",
    )
    AuditEntry.objects.create(
        tenant=tenant,
        flow=flow,
        record_link=link,
        operation="bill.release",
        status="succeeded",
        source_snapshot={
            "approved_by": "42",
            "approved_at": "2026-12-01T10:00:00+00:00",
            "values": {"Amount": "10.00"},
            "document_values": {"Amount": "10.00"},
            "released_at": "2026-12-01T10:01:00+00:00",
        },
    )
    run = ReconciliationRun.objects.create(
        tenant=tenant,
        finished_at=timezone.now(),
        status="succeeded",
        totals={"approved_unreleased": {"count": 1, "amount": "99.00"}},
    )
    diff = ReconciliationDifference.objects.create(
        run=run,
        tenant=tenant,
        flow=flow,
        difference="approved_unreleased",
        record_link=link,
        key=f"Bill {n}01",
        amount="99.00",
        detail=f"{tenant.slug} approved, not released",
    )
    return flow, run, diff


@pytest.fixture
def users(db, django_user_model, tenants):
    a, _ = tenants
    return {
        role: make_user(django_user_model, f"u-{role}", None, [a], role)
        for role in ("view", "audit", "operate", "administer")
    }


def export(client, tenant, fmt="csv", **extra):
    today = timezone.localdate()
    return client.post(
        reverse("admin:audit_evidenceexport_export"),
        {
            "tenant": str(tenant.pk),
            "period_start": str(today - timedelta(days=2)),
            "period_end": str(today),
            "format": fmt,
            **extra,
        },
    )


def test_auditor_exports_and_verifies_evidence_of_their_tenant(client, tenants, users):
    a, b = tenants
    seed(a, 11)
    seed(b, 22)
    client.force_login(users["audit"])
    page = client.get(reverse("admin:audit_evidenceexport_export"))
    assert page.status_code == 200
    assert b"Alpha Builders" in page.content and b"Zebra" not in page.content
    response = export(client, a)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    content = response.content
    assert response["X-Evidence-SHA256"] == hashlib.sha256(content).hexdigest()
    assert b"Bill 1101" in content and b"2201" not in content
    record = EvidenceExport.objects.get()
    assert (record.tenant, record.created_by, record.documents) == (a, "u-audit", 1)
    assert AuditEntry.objects.get(operation="evidence.export").actor == "u-audit"
    pdf = export(client, a, fmt="pdf")
    assert pdf.content.startswith(b"%PDF")
    # The exports list shows both, with their hashes; verify says which export a file is.
    listing = client.get(reverse("admin:audit_evidenceexport_changelist"))
    assert record.sha256.encode() in listing.content and b"Export evidence" in listing.content
    ok = client.post(
        reverse("admin:audit_evidenceexport_verify"), {"file": SimpleUploadedFile("e.csv", content)}
    )
    assert b'id="verify-ok"' in ok.content and f"export #{record.pk}".encode() in ok.content
    bad = client.post(
        reverse("admin:audit_evidenceexport_verify"),
        {"file": SimpleUploadedFile("e.csv", content.replace(b"10.00", b"11.00"))},
    )
    assert b'id="verify-bad"' in bad.content


def test_auditor_cannot_export_another_tenant_nor_act(client, tenants, users):
    a, b = tenants
    _, run_a, diff_a = seed(a, 11)
    _, run_b, diff_b = seed(b, 22)
    client.force_login(users["audit"])
    refused = export(client, b)
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    assert not EvidenceExport.objects.exists()
    # Another tenant's report and fix pages are 404; the own report reads, with no fix offered.
    assert client.get(reverse("admin:audit_reconciliationrun_report", args=[run_b.pk])).status_code == 404
    assert (
        client.get(reverse("admin:audit_reconciliationdifference_fix", args=[diff_b.pk])).status_code == 404
    )
    own = client.get(reverse("admin:audit_reconciliationrun_report", args=[run_a.pk]))
    assert own.status_code == 200
    assert (
        b"Bill 1101" in own.content
        and b"preview the fix" not in own.content
        and b"run-now" not in own.content
    )
    assert b"zebra" not in own.content.lower()
    assert (
        client.get(reverse("admin:audit_reconciliationdifference_fix", args=[diff_a.pk])).status_code == 403
    )
    posted = client.post(reverse("admin:audit_reconciliationrun_run_now"), {"tenant": str(a.pk)})
    assert posted.status_code == 403
    link = RecordLink.objects.get(tenant=a)
    assert client.get(reverse("admin:integrations_recordlink_replay", args=[link.pk])).status_code == 403


@pytest.mark.parametrize("role,allowed", [("view", False), ("operate", False), ("administer", True)])
def test_who_else_may_export(client, tenants, users, role, allowed):
    a, _ = tenants
    seed(a, 11)
    client.force_login(users[role])
    page = client.get(reverse("admin:audit_evidenceexport_export"))
    assert page.status_code == (200 if allowed else 403)
    response = export(client, a)
    assert (response.status_code == 200 and response.content.startswith(b"link_id")) is allowed
    assert EvidenceExport.objects.exists() is allowed


def test_operator_sees_the_fix_preview_and_reconcile_now(client, tenants, users, monkeypatch):
    a, _ = tenants
    _, run, diff = seed(a, 11)
    client.force_login(users["operate"])
    report = client.get(reverse("admin:audit_reconciliationrun_report", args=[run.pk]))
    assert b"preview the fix" in report.content and b"run-now" in report.content
    assert b"99.00" in report.content and b"timeline" in report.content
    queued = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *a, **k: queued.append(a))
    # No approvals flow: the preview says why, and nothing can be confirmed.
    fix = client.get(reverse("admin:audit_reconciliationdifference_fix", args=[diff.pk]))
    assert fix.status_code == 200 and b"cannot run" in fix.content
    client.post(reverse("admin:audit_reconciliationrun_run_now"), {"tenant": str(a.pk)})
    from integrations.flows.reconciliation.tasks import reconcile_tenant

    assert queued == [(reconcile_tenant, a.pk, "u-operate")]
