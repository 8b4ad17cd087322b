"""The watchdog: Asana deletes our webhook, approvals happen during the gap, the watchdog re-registers
and the gap's approvals are released exactly once; failing webhooks show as failing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEntry, InboundEvent
from integrations.flows.inbound import watchdog
from integrations.flows.inbound.tasks import check_webhooks, poll_approvals
from integrations.models import AsanaWebhook
from tests.flows.inbound.harness import World, world  # noqa: F401


def release_calls(w: World) -> int:
    return sum(1 for m, p, _ in w.acumatica.request_log if m == "POST" and p.endswith("/Bill/ReleaseBill"))


@pytest.fixture
def registered(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    return world


def test_deleted_webhook_is_reregistered_and_the_gaps_approvals_released_once(registered: World):
    w = registered
    old = AsanaWebhook.objects.get()
    w.asana.delete_webhook_silently(old.webhook_gid)
    bills = [w.acumatica.add_bill("ABCCONCRETE", 100.0 + n) for n in range(3)]
    tasks = [w.bill_task(b)[0] for b in bills]
    for gid in tasks:  # approved while nobody is listening: these events are lost
        w.clock.now += 60
        w.approve(gid)
    assert w.asana.deliver_pending_events() == []
    assert release_calls(w) == 0

    report = watchdog.check_tenant(w.tenant, clients=w.clients)
    assert report.reregistered == 1 and report.backfilled >= 3, report.summary()
    hook = AsanaWebhook.objects.get()
    assert hook.webhook_gid != old.webhook_gid and hook.state == AsanaWebhook.State.ACTIVE
    assert set(w.asana.webhooks) == {hook.webhook_gid}
    assert [w.bill(b["ReferenceNbr"])["Status"] for b in bills] == ["Open"] * 3
    assert release_calls(w) == 3

    # Everything again — watchdog, catch-up poll, late deliveries: nothing is released twice.
    watchdog.check_tenant(w.tenant, clients=w.clients)
    poll_approvals(w.tenant.pk)
    w.asana.deliver_pending_events()
    assert release_calls(w) == 3
    assert AuditEntry.objects.filter(operation="bill.release", status="succeeded").count() == 3
    assert AuditEntry.objects.filter(operation="webhook.reregister").count() == 1


def test_failure_deletion_timestamp_shows_as_failing(registered: World):
    w = registered
    real = w.asana.deliver
    w.asana.deliver = lambda url, headers, body: (503, {}, b"Service Unavailable")
    w.asana.send_heartbeats()
    w.asana.deliver = real
    report = watchdog.check_tenant(w.tenant, clients=w.clients)
    hook = AsanaWebhook.objects.get()
    assert report.failing == 1
    assert hook.state == AsanaWebhook.State.FAILING
    assert hook.failure_deletion_timestamp is not None
    assert hook.last_failure_content.startswith("503")
    w.asana.send_heartbeats()  # delivery works again
    watchdog.check_tenant(w.tenant, clients=w.clients)
    assert AsanaWebhook.objects.get().state == AsanaWebhook.State.ACTIVE


def test_no_heartbeat_for_more_than_eight_hours_shows_as_failing(registered: World):
    w = registered
    AsanaWebhook.objects.update(
        last_heartbeat_at=timezone.now() - timedelta(hours=10), created_at=timezone.now() - timedelta(days=2)
    )
    report = watchdog.check_tenant(w.tenant, clients=w.clients)
    assert report.failing == 1
    assert AsanaWebhook.objects.get().state == AsanaWebhook.State.FAILING


def test_a_failed_listing_changes_nothing(registered: World):
    w = registered
    w.asana.faults.add("status", method="GET", path="^/webhooks$", status=500, times=10)
    report = watchdog.check_tenant(w.tenant, clients=w.clients)
    assert not report.ok
    assert AsanaWebhook.objects.get().state == AsanaWebhook.State.ACTIVE
    assert len(w.asana.webhooks) == 1


def test_catch_up_poll_releases_an_approval_whose_event_was_lost(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 7.0)
    gid, _ = w.bill_task(bill)
    w.clock.now += 5
    w.approve(gid)
    for queued in w.asana.webhooks.values():
        queued["queue"].clear()  # at-most-once: Asana never delivers this one
    poll_approvals(w.tenant.pk)
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    assert InboundEvent.objects.filter(dedupe_key__startswith="asana:poll:").exists()


def test_connector_webhooks_check_command(registered: World):
    out = StringIO()
    call_command("connector", "webhooks", "check", "--tenant", "ridgeline", stdout=out)
    assert "0 re-registered, 0 failing" in out.getvalue()


def test_catch_up_poll_and_watchdog_survive_a_rate_limit_and_catch_up_next_time(registered: World):
    w = registered
    bill = w.acumatica.add_bill("ABCCONCRETE", 8.0)
    gid, _ = w.bill_task(bill)
    w.clock.now += 5
    w.approve(gid)
    for queued in w.asana.webhooks.values():
        queued["queue"].clear()  # the event is never delivered
    w.asana.faults.add("status", method="GET", path="^/tasks$", status=429, retry_after=90, times=20)
    assert "not polled, the next pass retries" in poll_approvals(w.tenant.pk)  # no crash
    w.asana.delete_webhook_silently(AsanaWebhook.objects.get().webhook_gid)
    assert "stopped" in check_webhooks(w.tenant.pk)  # the gap backfill hit the 429: reported
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Balanced"
    w.asana.faults.clear()
    poll_approvals(w.tenant.pk)  # the cursor did not move: the approval is found now
    assert w.bill(bill["ReferenceNbr"])["Status"] == "Open"
    assert release_calls(w) == 1
