"""Retention: each audit table's rows are purged by kind and age, in batches, the purge itself audited;
effects and a record's lineage outlive the API calls made for them (issue 17)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import models
from django.utils import timezone
from django_q.models import Schedule

from audit.models import Alert, ApiCall, AuditEntry, InboundEvent, SyncRun
from audit.recorder import record_entry
from audit.retention import DEFAULT_DAYS, ensure_schedule, purge_expired, retention_days
from integrations.console import lineage
from integrations.console.dashboard import build_dashboard
from integrations.models import Flow, RecordLink, Tenant

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def aged(row, days: float, field: str):
    """Backdate one row (auto_now_add fields and the append-only managers allow no other way)."""
    models.QuerySet(type(row)).filter(pk=row.pk).update(**{field: NOW - timedelta(days=days)})
    return row


@pytest.fixture
def tenant():
    return Tenant.objects.create(slug="ridgeline", name="Ridgeline")


@pytest.fixture
def link(tenant):
    flow = Flow.objects.create(tenant=tenant, name="AP bills", kind="acumatica_bills")
    return RecordLink.objects.create(
        tenant=tenant, flow=flow, kind="bill", acumatica_type="Bill", acumatica_ref="000123", state="linked"
    )


def entry(tenant, link, status, days, **fields):
    row = AuditEntry.objects.create(
        tenant=tenant,
        record_link=link,
        operation="update_task",
        status=status,
        record_key="Bill/000123",
        **fields,
    )
    return aged(row, days, "created_at")


def call(tenant, link, days):
    return ApiCall.objects.create(
        tenant=tenant,
        record_link=link,
        system="asana",
        method="PUT",
        url="https://app.asana.com/api/1.0/tasks/1",
        status_code=200,
        request_excerpt='{"data": {"name": "Bill 000123"}}',
        started_at=NOW - timedelta(days=days),
    )


def event(tenant, status, days, body=b'{"events": []}'):
    row = InboundEvent.objects.create(
        tenant=tenant, source="asana_webhook", status=status, raw_body=body, headers={"X-A": "1"}
    )
    return aged(row, days, "received_at")


def test_the_defaults_keep_effects_seven_years_and_excerpts_and_bodies_ninety_days(settings):
    days = retention_days()
    assert days["effects"] == days["inbound_events"] == days["sync_runs"] == 2557
    assert days["api_calls"] == days["inbound_bodies"] == 90
    settings.AUDIT_RETENTION_DAYS = {"api_calls": 30}
    assert retention_days() == {**DEFAULT_DAYS, "api_calls": 30}


def test_purge_drops_old_calls_and_no_ops_keeps_effects_and_the_lineage(tenant, link):
    effect = entry(tenant, link, AuditEntry.Status.SUCCEEDED, 400)
    failure = entry(tenant, link, AuditEntry.Status.FAILED, 2000, error="422 Amount")
    no_op = entry(tenant, link, AuditEntry.Status.UNCHANGED, 400)
    recent_no_op = entry(tenant, link, AuditEntry.Status.UNCHANGED, 10)
    old_call, new_call = call(tenant, link, 120), call(tenant, link, 5)
    ancient = entry(tenant, link, AuditEntry.Status.SUCCEEDED, 2600)

    result = purge_expired(NOW, pause=0)

    assert "api_calls 1" in result and "no_ops 1" in result and "effects 1" in result
    assert set(ApiCall.objects.values_list("pk", flat=True)) == {new_call.pk}
    kept = set(AuditEntry.objects.filter(operation="update_task").values_list("pk", flat=True))
    assert kept == {effect.pk, failure.pk, recent_no_op.pk}
    assert no_op.pk not in kept and ancient.pk not in kept and old_call.pk != new_call.pk
    # The record's lineage still shows its effects and failure after their API calls went.
    items = lineage.timeline(link)
    audit_items = [i for i in items if i.kind == "audit"]
    assert {i.status for i in audit_items} >= {"succeeded", "failed"}
    assert [i for i in items if i.kind == "api"] and len([i for i in items if i.kind == "api"]) == 1
    # The purge is on record for the tenant, with what it removed and why.
    purge = AuditEntry.objects.get(operation="retention.purge")
    assert purge.tenant == tenant and purge.actor == "retention"
    assert purge.payload["removed"] == {"api_calls": 1, "no_ops": 1, "effects": 1}
    assert purge.payload["retention_days"]["api_calls"] == 90


def test_inbound_bodies_are_cleared_at_90_days_and_rows_by_kind_later(tenant, link):
    acted = event(tenant, InboundEvent.Status.PROCESSED, 120)
    noise = event(tenant, InboundEvent.Status.IGNORED, 400)
    waiting = event(tenant, InboundEvent.Status.QUEUED, 3000)  # never purged while it waits
    very_old = event(tenant, InboundEvent.Status.PROCESSED, 2600)
    effect = entry(tenant, link, AuditEntry.Status.SUCCEEDED, 100, inbound_event=very_old)
    fresh = event(tenant, InboundEvent.Status.PROCESSED, 1)

    purge_expired(NOW, pause=0)

    acted.refresh_from_db()
    assert bytes(acted.raw_body) == b"" and acted.headers == {} and acted.status == "processed"
    assert not InboundEvent.objects.filter(pk__in=[noise.pk, very_old.pk]).exists()
    assert bytes(InboundEvent.objects.get(pk=waiting.pk).raw_body) == b'{"events": []}'
    assert bytes(InboundEvent.objects.get(pk=fresh.pk).raw_body) == b'{"events": []}'
    effect = AuditEntry.objects.get(pk=effect.pk)  # the effect outlives its event
    assert effect.inbound_event_id is None


def test_an_expired_event_is_deleted_without_its_body_being_rewritten_first(tenant, link):
    """Deleting is the whole job for an expired event: clearing its body first would write a new
    version of a row about to go (the 1M-row benchmark cleared 80,000 such bodies for nothing)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    noise = event(tenant, InboundEvent.Status.IGNORED, 400)
    very_old = event(tenant, InboundEvent.Status.PROCESSED, 2600)
    acted = event(tenant, InboundEvent.Status.PROCESSED, 120)

    with CaptureQueriesContext(connection) as queries:
        line = purge_expired(NOW, pause=0)

    assert line == "inbound_noise 1, inbound_events 1, inbound_bodies 1"
    body_updates = [
        q["sql"] for q in queries if q["sql"].startswith('UPDATE "audit_inboundevent" SET "raw_body"')
    ]
    assert len(body_updates) == 1 and str(acted.pk) in body_updates[0]
    assert str(noise.pk) not in body_updates[0] and str(very_old.pk) not in body_updates[0]
    assert list(InboundEvent.objects.values_list("pk", flat=True)) == [acted.pk]


def test_purge_runs_in_batches_and_a_capped_run_is_carried_on_by_the_next(tenant, link):
    for _ in range(5):
        call(tenant, link, 200)
    assert purge_expired(NOW, batch_size=2, max_batches=1, pause=0).startswith("api_calls 2")
    assert ApiCall.objects.count() == 3
    assert purge_expired(NOW, batch_size=2, max_batches=10, pause=0).startswith("api_calls 3")
    assert ApiCall.objects.count() == 0
    assert purge_expired(NOW, pause=0) == "nothing expired"


def test_runs_and_resolved_alerts_expire_open_ones_stay(tenant):
    run = aged(SyncRun.objects.create(tenant=tenant, status="succeeded"), 2600, "started_at")
    running = aged(SyncRun.objects.create(tenant=tenant, status="running"), 2600, "started_at")
    old = NOW - timedelta(days=2600)
    Alert.objects.create(
        tenant=tenant, kind="mapping_drift", subject="a", last_raised_at=old, resolved_at=old
    )
    open_alert = Alert.objects.create(tenant=tenant, kind="mapping_drift", subject="b", last_raised_at=old)
    purge_expired(NOW, pause=0)
    assert not SyncRun.objects.filter(pk=run.pk).exists() and SyncRun.objects.filter(pk=running.pk).exists()
    assert list(Alert.objects.values_list("pk", flat=True)) == [open_alert.pk]


def test_the_console_says_how_far_back_history_goes(tenant, link):
    entry(tenant, link, AuditEntry.Status.SUCCEEDED, 30)
    call(tenant, link, 12)
    [row] = build_dashboard(tenants=Tenant.objects.filter(pk=tenant.pk), now=NOW)
    history = row.items["history"]
    assert history.value == "30 days"
    assert "effects kept 2557 days" in history.reason and "API calls since" in history.reason
    assert "(kept 90 days)" in history.reason


def test_the_purge_has_a_daily_schedule(db):
    ensure_schedule()
    ensure_schedule()
    schedule = Schedule.objects.get(name="audit-retention-purge")
    assert schedule.func == "audit.retention.purge_expired" and schedule.schedule_type == Schedule.DAILY


def test_a_recorded_purge_entry_is_append_only_like_any_other(tenant):
    row = record_entry(tenant=tenant, operation="retention.purge", status="succeeded")
    with pytest.raises(Exception, match="append-only"):
        AuditEntry.objects.filter(pk=row.pk).delete()


def test_a_batch_deletes_without_loading_its_rows_and_keeps_what_pointed_at_them(tenant, link):
    """No row of an expired table is read into Python (bodies, JSON payloads: most of a batch's CPU):
    the references to it are set NULL by UPDATE and the rows go by one DELETE by primary key."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    old_event = event(tenant, InboundEvent.Status.IGNORED, 400)
    kept = entry(tenant, link, AuditEntry.Status.SUCCEEDED, 5, inbound_event=old_event)
    no_op = entry(tenant, link, AuditEntry.Status.UNCHANGED, 400)
    replay = entry(tenant, link, AuditEntry.Status.SUCCEEDED, 5, replay_of=no_op)

    with CaptureQueriesContext(connection) as queries:
        purge_expired(NOW, pause=0)

    sql = [q["sql"] for q in queries]
    columns = [q.split(" FROM ")[0] for q in sql if q.startswith("SELECT")]  # what each read loads
    full_reads = [c for c in columns if '"raw_body"' in c or '"source_snapshot"' in c]
    assert full_reads == [], full_reads
    assert not InboundEvent.objects.filter(pk=old_event.pk).exists()
    assert not AuditEntry.objects.filter(pk=no_op.pk).exists()
    kept, replay = AuditEntry.objects.get(pk=kept.pk), AuditEntry.objects.get(pk=replay.pk)
    assert kept.inbound_event_id is None and replay.replay_of_id is None


def test_the_purge_rests_so_it_takes_at_most_its_share_of_the_time(tenant, link, monkeypatch):
    import audit.retention as retention

    for _ in range(6):
        call(tenant, link, 200)
    clock = [1000.0]
    rests: list[float] = []

    def monotonic():
        clock[0] += 0.2  # each look at the clock: the batch's work took 0.2 s
        return clock[0]

    monkeypatch.setattr(retention.time, "monotonic", monotonic)
    monkeypatch.setattr(retention, "_rest", rests.append)
    retention.purge_expired(NOW, batch_size=2, pause=0.05, share=0.25)
    assert ApiCall.objects.count() == 0
    # 0.2 s busy at a quarter share: 0.6 s of rest after each full batch (not after the last)
    assert rests == [pytest.approx(0.6), pytest.approx(0.6), pytest.approx(0.6)]
