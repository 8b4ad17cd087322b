"""Alerts: deduplicated per (tenant, kind, subject) with a cooldown, mailed, raised by the sweep."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.utils import timezone

from audit.models import Alert
from integrations.flows.operations.alerts import COOLDOWN, raise_alert, sweep
from integrations.models import AsanaWebhook, Flow, RecordLink, Sage100Connection


def test_repeats_are_counted_and_mailed_once_per_cooldown(tenant, settings):
    settings.ALERT_EMAILS = ["ops@example.com"]
    for _ in range(5):
        raise_alert(tenant, Alert.Kind.WEBHOOK_FAILING, "webhook on 1", "500")
    alert = Alert.objects.get()
    assert alert.count == 5 and len(mail.outbox) == 1
    assert "webhook on 1" in mail.outbox[0].subject and mail.outbox[0].to == ["ops@example.com"]
    Alert.objects.filter(pk=alert.pk).update(
        last_notified_at=timezone.now() - COOLDOWN - timedelta(seconds=1)
    )
    raise_alert(tenant, Alert.Kind.WEBHOOK_FAILING, "webhook on 1", "500")
    assert len(mail.outbox) == 2


def test_sweep_raises_each_condition_and_resolves_cleared_ones(tenant, settings):
    settings.ALERT_EMAILS = ["ops@example.com"]
    hook = AsanaWebhook.objects.create(
        tenant=tenant, resource_gid="1200000000000001", state="failing", last_failure_content="503"
    )
    flow = Flow.objects.create(
        tenant=tenant,
        name="AP bills",
        kind="acumatica_bills",
        mapping_status="broken",
        mapping_status_reason="field 12 removed",
    )
    RecordLink.objects.create(
        tenant=tenant,
        flow=flow,
        kind="bill",
        acumatica_type="Bill",
        acumatica_ref="000123",
        state="failed",
        failure_count=4,
        state_reason="422 Amount",
    )
    Sage100Connection.objects.create(
        tenant=tenant,
        agent_url="https://10.0.0.5:8443",
        company_code="ABC",
        last_check_ok=False,
        last_check_message="connection refused",
    )
    sweep()
    kinds = set(Alert.objects.values_list("kind", flat=True))
    assert kinds == {"webhook_failing", "mapping_drift", "record_failing", "agent_unreachable"}
    assert len(mail.outbox) == 4
    sweep()
    assert len(mail.outbox) == 4  # deduplicated
    AsanaWebhook.objects.filter(pk=hook.pk).update(state="active")
    sweep()
    assert Alert.objects.get(kind="webhook_failing").resolved_at is not None
    assert Alert.objects.get(kind="record_failing").link.endswith(f"/{RecordLink.objects.get().pk}/lineage/")
