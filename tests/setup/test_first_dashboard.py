"""The first dashboard after a setup: green where things work, every red says what to do and links
to the wizard step that fixes it; a flow just switched on waits for its first pass instead of "never"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.urls import reverse

from integrations.console import dashboard as d
from integrations.models import AcumaticaConnection, Flow, SetupProgress, Tenant

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def url(step):
    return f"/wizard/{step}"


def test_setup_rule_every_red_names_the_step_and_links_to_it():
    missing = d.setup_health(False, None, "", False, None, None, False, url)
    assert missing.level == d.RED and "step 1" in missing.reason and missing.url == "/wizard/1"
    failed = d.setup_health(
        True, False, "ok instance reachable: x\nFAIL authentication: refused", True, True, 5, True, url
    )
    assert failed.level == d.RED and "authentication: refused" in failed.reason and failed.url == "/wizard/1"
    no_asana = d.setup_health(True, True, "", False, None, 2, False, url)
    assert no_asana.level == d.RED and no_asana.url == "/wizard/2"
    halfway = d.setup_health(True, True, "", True, True, 3, False, url)
    assert halfway.level == d.AMBER and halfway.url == "/wizard/3" and "resume" in halfway.reason
    done = d.setup_health(True, True, "", True, True, 5, True, url)
    assert done.level == d.GREEN


def test_a_flow_just_switched_on_waits_for_its_first_pass():
    waiting = d.poll_health(None, 5, True, NOW, on_since=NOW - timedelta(minutes=3))
    assert waiting.level == d.GREY and "first pass" in waiting.reason
    assert d.poll_health(None, 5, True, NOW, on_since=NOW - timedelta(minutes=30)).level == d.AMBER
    late = d.poll_health(None, 5, True, NOW, on_since=NOW - timedelta(hours=3))
    assert late.level == d.RED and "Sync now" in late.reason  # says what to do


def test_the_dashboard_page_links_red_tiles_to_the_wizard(admin_client, db):
    broken = Tenant.objects.create(slug="broken", name="Broken Co")
    AcumaticaConnection.objects.create(
        tenant=broken,
        instance_url="https://erp.broken.test/AcumaticaERP",
        last_check_ok=False,
        last_check_message="FAIL authentication: the password was refused",
    )
    halfway = Tenant.objects.create(slug="halfway", name="Halfway Co")
    SetupProgress.objects.create(tenant=halfway, step=3)
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="setup-link"' in html
    step1 = reverse("admin:setup_step", args=["broken", 1])
    assert (
        f'<a href="{step1}" title="the last Acumatica test failed (authentication: the password was refused)'
        in html
    )
    assert reverse("admin:setup_step", args=["halfway", 1]) in html  # no Acumatica yet: step 1


def test_a_tenant_set_up_by_the_wizard_is_green_with_no_never(set_up, admin_client):
    from integrations.setup import steps

    tenant = set_up()
    steps.run_fit_report(tenant)
    Flow.objects.filter(tenant=tenant).update(enabled=True)
    SetupProgress.objects.filter(tenant=tenant).update(switched_on_at=datetime.now(UTC))
    (row,) = d.build_dashboard(tenants=Tenant.objects.filter(pk=tenant.pk))
    assert row.items["setup"].level == d.GREEN
    polls = [f.items["poll"] for f in row.flows]
    assert all(p.value != "never" for p in polls) and all(p.level != d.RED for p in polls)
    reds = [h for h in row.items.values() if h.level == d.RED]
    assert all(h.url for h in reds)
