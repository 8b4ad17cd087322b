"""Two tenants with a row in every console model, and a user per role of the first one.

Shared by the tenant-isolation crawl (test_tenant_isolation.py) and the browser test. The second
tenant's rows all carry MARK (its slug and name) so a page that leaks any of them shows it.
Connections point at a closed loopback port: a page that reads a vendor fails fast and must say so.
"""

from __future__ import annotations

from datetime import timedelta

from django.apps import apps
from django.utils import timezone

from audit.models import (
    Alert,
    ApiCall,
    AuditEntry,
    EvidenceExport,
    InboundEvent,
    ReconciliationDifference,
    ReconciliationRun,
    SyncRun,
)
from integrations.membership import Role
from integrations.models import (
    AcumaticaConnection,
    AsanaConnection,
    AsanaWebhook,
    ControlHold,
    Cursor,
    Flow,
    GuardedWrite,
    RecordLink,
    Sage100Connection,
    TaskAttachment,
    Tenant,
    TenantMembership,
)
from mappings.models import FieldMapping, UserMapping, ValueMapping

MARK = "zebracorp"
CLOSED = "https://127.0.0.1:9"  # nothing listens: a vendor read fails at once


def populate(slug: str, name: str, n: int) -> dict[type, object]:
    """One row of every tenant-scoped model for a new tenant; n makes GIDs and keys unique."""
    now = timezone.now()
    tenant = Tenant.objects.create(slug=slug, name=name)
    rows: dict[type, object] = {Tenant: tenant}
    rows[AcumaticaConnection] = AcumaticaConnection.objects.create(
        tenant=tenant, instance_url=CLOSED, username="u", password="p" * 8
    )
    rows[AsanaConnection] = AsanaConnection.objects.create(
        tenant=tenant, api_base_url=CLOSED, workspace_gid=f"{n}000", personal_access_token="t" * 20
    )
    rows[Sage100Connection] = Sage100Connection.objects.create(
        tenant=tenant, agent_url=CLOSED, company_code="ABC", api_key="k" * 20, signing_secret="s" * 20
    )
    flow = Flow.objects.create(
        tenant=tenant, name=f"{slug} bills", kind=Flow.Kind.ACUMATICA_BILLS, asana_project_gid=f"{n}001"
    )
    rows[Flow] = flow
    rows[Cursor] = Cursor.objects.create(tenant=tenant, stream=f"{slug}-bills", value="2026-01-01")
    link = RecordLink.objects.create(
        tenant=tenant,
        flow=flow,
        kind=RecordLink.Kind.BILL,
        acumatica_type="Bill",
        acumatica_ref=f"{n}0001",
        asana_task_gid=f"{n}002",
        state=RecordLink.State.LINKED,
    )
    rows[RecordLink] = link
    rows[GuardedWrite] = GuardedWrite.objects.create(link=link, operation="create", asana_time=now)
    rows[TaskAttachment] = TaskAttachment.objects.create(
        link=link, file_id=f"{n}-file", file_name=f"{slug}-invoice.pdf", state=TaskAttachment.State.UPLOADED
    )
    rows[ControlHold] = ControlHold.objects.create(
        tenant=tenant, link=link, reason=f"possible duplicate ({slug})"
    )
    rows[AsanaWebhook] = AsanaWebhook.objects.create(
        tenant=tenant, flow=flow, resource_gid=f"{n}001", webhook_gid=f"{n}003", secret="w" * 20
    )
    event = InboundEvent.objects.create(
        tenant=tenant, source=InboundEvent.Source.ACUMATICA_PUSH, raw_body=f'{{"who": "{slug}"}}'.encode()
    )
    rows[InboundEvent] = event
    run = SyncRun.objects.create(tenant=tenant, flow=flow, status=SyncRun.Status.SUCCEEDED)
    rows[SyncRun] = run
    rows[AuditEntry] = AuditEntry.objects.create(
        tenant=tenant,
        run=run,
        flow=flow,
        record_link=link,
        inbound_event=event,
        operation="bill.create_task",
        record_key=f"Bill/{n}0001",
        status=AuditEntry.Status.FAILED,
        error=f"{slug} failed",
    )
    rows[ApiCall] = ApiCall.objects.create(
        tenant=tenant,
        run=run,
        record_link=link,
        system="asana",
        method="GET",
        url=f"{CLOSED}/{slug}",
        started_at=now - timedelta(seconds=5),
        status_code=200,
    )
    rows[Alert] = Alert.objects.create(
        tenant=tenant, kind=Alert.Kind.RECORD_FAILING, subject=f"{slug} bill", last_raised_at=now
    )
    rows[EvidenceExport] = EvidenceExport.objects.create(
        tenant=tenant,
        flow=flow,
        period_start=now.date(),
        period_end=now.date(),
        format="csv",
        sha256=f"{n}" * 32,
        created_by=f"{slug}-auditor",
    )
    recon = ReconciliationRun.objects.create(
        tenant=tenant, finished_at=now, status="succeeded", totals={"approved_unreleased": {"count": 1}}
    )
    rows[ReconciliationRun] = recon
    rows[ReconciliationDifference] = ReconciliationDifference.objects.create(
        run=recon,
        tenant=tenant,
        flow=flow,
        difference="approved_unreleased",
        record_link=link,
        key=f"Bill {n}0001",
        acumatica_type="Bill",
        acumatica_ref=f"{n}0001",
        asana_task_gid=f"{n}002",
        detail=f"{slug} approved, not released",
    )
    field = FieldMapping.objects.create(
        flow=flow, source_path="Amount", asana_field_gid=f"{n}004", cached_name=f"{slug} amount"
    )
    rows[FieldMapping] = field
    rows[ValueMapping] = ValueMapping.objects.create(
        tenant=tenant, kind="vendor", source_value=f"{slug}-V1", target_value=f"{n}005"
    )
    rows[UserMapping] = UserMapping.objects.create(tenant=tenant, email=f"ap@{slug}.example")
    from integrations.models import SetupProgress

    rows[SetupProgress] = SetupProgress.objects.create(tenant=tenant, step=3, answers={"note": slug})
    return rows


def build(django_user_model) -> tuple[dict, dict, dict]:
    """(rows of tenant A, rows of tenant B, {role: user of A}): A has a member per role, B none of them."""
    a = populate("alpha", "Alpha Builders", 11)
    b = populate(MARK, f"{MARK.title()} Ltd", 22)
    users = {}
    for role in Role:
        user = django_user_model.objects.create_user(
            f"alpha-{role}", f"{role}@alpha.example", "pw-12345678", is_staff=True
        )
        TenantMembership.objects.create(user=user, tenant=a[Tenant], role=role)
        users[str(role)] = user
    a[TenantMembership] = TenantMembership.objects.filter(tenant=a[Tenant]).first()
    other = django_user_model.objects.create_user(
        "zebra-view", "v@zebra.example", "pw-12345678", is_staff=True
    )
    b[TenantMembership] = TenantMembership.objects.create(user=other, tenant=b[Tenant], role=Role.VIEW)
    return a, b, users


def console_models() -> list[type]:
    return [
        m for label in ("integrations", "mappings", "audit") for m in apps.get_app_config(label).get_models()
    ]
