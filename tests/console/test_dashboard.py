"""Health rules (pure, one per item) and the dashboard page (fixed query count, links, colours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from integrations.console import dashboard as d
from integrations.models import AsanaWebhook, Flow, Tenant

from ..flows.documents.test_documents_support import *  # noqa: F403
from .support import *  # noqa: F403

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def hook(**kw):
    base = dict(
        state="active",
        failure_deletion_timestamp=None,
        last_failure_at=None,
        last_event_at=None,
        last_heartbeat_at=NOW - timedelta(hours=1),
        pending_since=None,
    )
    return SimpleNamespace(**{**base, **kw})


def test_poll_rule():
    assert d.poll_health(None, 5, True, NOW).level == d.RED
    assert d.poll_health(NOW - timedelta(minutes=4), 5, True, NOW).level == d.GREEN
    assert d.poll_health(NOW - timedelta(minutes=20), 5, True, NOW).level == d.AMBER
    assert d.poll_health(NOW - timedelta(hours=2), 5, True, NOW).level == d.RED
    assert d.poll_health(None, 5, False, NOW).level == d.GREY
    assert d.poll_health(None, 5, True, NOW, polled=False).level == d.GREY


def test_backlog_failures_quarantine_rules():
    assert d.backlog_health(0, None, NOW).level == d.GREEN
    assert d.backlog_health(3, NOW - timedelta(minutes=1), NOW).level == d.GREEN
    assert d.backlog_health(3, NOW - timedelta(minutes=10), NOW).level == d.AMBER
    assert d.backlog_health(3, NOW - timedelta(hours=1), NOW).level == d.RED
    assert d.failures_health(0).level == d.GREEN
    assert d.failures_health(2).level == d.AMBER
    assert d.failures_health(10).level == d.RED
    assert d.quarantine_health(0).level == d.GREEN and d.quarantine_health(1).level == d.AMBER


def test_webhook_rule():
    assert d.webhook_health([], NOW).level == d.GREY
    assert d.webhook_health([hook()], NOW).level == d.GREEN
    assert d.webhook_health([hook(last_heartbeat_at=NOW - timedelta(hours=10))], NOW).level == d.AMBER
    failing = d.webhook_health([hook(state="failing", last_failure_at=NOW)], NOW)
    assert failing.level == d.RED and "failing" in failing.reason
    doomed = d.webhook_health([hook(failure_deletion_timestamp=NOW + timedelta(hours=5))], NOW)
    assert doomed.level == d.RED and "delete" in doomed.reason
    assert d.webhook_health([hook(state="gone")], NOW).value == "gone"
    assert (
        d.webhook_health([hook(state="pending", pending_since=NOW - timedelta(hours=1))], NOW).level
        == d.AMBER
    )


def test_rate_seats_agent_rules():
    assert d.rate_health(10, 1500).level == d.GREEN
    assert d.rate_health(1100, 1500).level == d.AMBER
    assert d.rate_health(1400, 1500).level == d.RED
    assert d.rate_health(0, None).level == d.GREY
    assert d.seats_health("oauth_password", 0, 2).value == "n/a (OAuth)"
    assert d.seats_health("cookie", 1, 2).level == d.GREEN
    assert d.seats_health("cookie", 2, 2).level == d.AMBER
    assert d.seats_health("cookie", 3, 2).level == d.RED
    # After "API Login Limit" the tenant's sign-ins are paused (integrations/acumatica/seats.py): red.
    now = datetime.now(UTC)
    paused = d.seats_health("oauth_password", 0, 1, paused_until=now + timedelta(minutes=30), now=now)
    assert paused.level == d.RED and paused.value == "paused" and "API Login Limit" in paused.reason
    assert (
        d.seats_health("oauth_password", 0, 1, paused_until=now - timedelta(minutes=1), now=now).level
        == d.GREY
    )
    assert d.agent_health(False, None, None, "", NOW).level == d.GREY
    assert d.agent_health(True, None, None, "", NOW).level == d.AMBER
    assert d.agent_health(True, NOW, False, "connection refused", NOW).level == d.RED
    assert d.agent_health(True, NOW - timedelta(minutes=5), True, "", NOW).level == d.GREEN


def _tenant_with_flows(slug, n_flows=2):
    tenant = Tenant.objects.create(slug=slug, name=slug.title())
    for i in range(n_flows):
        Flow.objects.create(tenant=tenant, name=f"f{i}", kind="acumatica_bills")
    AsanaWebhook.objects.create(tenant=tenant, resource_gid="1200000000000001", state="active")
    return tenant


def test_dashboard_queries_do_not_grow_with_tenants_and_flows(db):
    _tenant_with_flows("one", 1)
    with CaptureQueriesContext(connection) as small:
        d.build_dashboard()
    for slug in ("two", "three", "four"):
        _tenant_with_flows(slug, 3)
    with CaptureQueriesContext(connection) as big:
        rows = d.build_dashboard()
    assert len(rows) == 4 and len(big) == len(small) <= 10


def test_dashboard_page_shows_a_failing_webhook_in_red_with_its_link(admin_client, db):
    tenant = _tenant_with_flows("acme")
    AsanaWebhook.objects.filter(tenant=tenant).update(
        state="failing", last_failure_at=NOW, last_failure_content="500 Server Error"
    )
    page = admin_client.get(reverse("admin:index"))
    html = page.content.decode()
    assert page.status_code == 200 and 'id="dashboard"' in html
    assert 'class="rag rag-red">failing<' in html
    assert f"/admin/integrations/asanawebhook/?tenant__id__exact={tenant.pk}" in html
