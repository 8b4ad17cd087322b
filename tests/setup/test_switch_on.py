"""Step 5: the push URL and header for SM302000, the flows switched on, Asana webhooks registered and
verified by their handshake, and a push from Acumatica verified live."""

from __future__ import annotations

import pytest

from integrations.models import AsanaWebhook, Flow, SetupProgress
from integrations.setup import steps

from ..flows.inbound.harness import django_deliverer

PUBLIC = "https://connector.ridgeline.test"


@pytest.fixture
def public_url(settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.ALLOWED_HOSTS = ["*"]


def test_switch_on_needs_the_fit_report_first(set_up):
    tenant = set_up()
    with pytest.raises(steps.StepError) as info:
        steps.switch_on(tenant)
    assert "fit report" in info.value.problems["fit_report"]
    assert not Flow.objects.filter(tenant=tenant, enabled=True).exists()


def test_switch_on_enables_the_flows_and_registers_verified_webhooks(set_up, asana, client, public_url):
    asana.deliver = django_deliverer(client)
    tenant = set_up()
    steps.run_fit_report(tenant)
    assert not asana.webhooks

    names = steps.switch_on(tenant)

    assert set(names) == {"AP bills", "Bill approvals"}
    assert set(Flow.objects.filter(tenant=tenant).values_list("enabled", flat=True)) == {True}
    # the webhook exists in Asana, its handshake reached our view, and its secret is stored
    (hook,) = asana.webhooks.values()
    assert hook["target"].startswith(PUBLIC + "/hooks/asana/")
    assert asana.deliveries[0][0] == "handshake" and asana.deliveries[0][1] in (200, 204)
    row = AsanaWebhook.objects.get(tenant=tenant)
    assert row.state == "active" and row.secret
    state = steps.verification(tenant)
    assert state["webhooks"][0]["verified"] is True and state["push_received_at"] is None
    assert SetupProgress.objects.get(tenant=tenant).switched_on_at is not None


def test_the_push_settings_verify_live_when_acumatica_pushes(set_up, acu, client, public_url):
    tenant = set_up()
    push = steps.push_settings(tenant)
    assert push.url == f"{PUBLIC}/hooks/acumatica/{tenant.acumatica.push_uuid}/"
    assert push.header_name == "X-ML-Connector-Secret" and len(push.header_value) >= 32 and push.fresh
    again = steps.push_settings(tenant)  # made once, kept, and never shown again
    assert again.header_value == "" and not again.fresh
    tenant.acumatica.refresh_from_db()
    assert tenant.acumatica.push_secret == push.header_value

    # the operator pastes both into SM302000; a bill changes; Acumatica pushes
    acu.deliver = django_deliverer(client)
    acu.configure_push(push.url, push.header_name, push.header_value)
    acu.control(
        "person_edit_bill", type="Bill", nbr="000001", Description="Ready-mix concrete, Lot 14 (revised)"
    )
    assert acu.push_log and acu.push_log[-1]["status"] == 200
    assert steps.verification(tenant)["push_received_at"] is not None


def test_a_push_with_the_wrong_header_does_not_verify(set_up, acu, client, public_url):
    tenant = set_up()
    push = steps.push_settings(tenant)
    acu.deliver = django_deliverer(client)
    acu.configure_push(push.url, push.header_name, "not-the-secret", max_attempts=1)
    acu.control("person_edit_bill", type="Bill", nbr="000001", Description="changed")
    assert acu.push_log[-1]["status"] == 401
    assert steps.verification(tenant)["push_received_at"] is None


def test_a_new_push_value_replaces_the_old_one(set_up, acu, client, public_url):
    tenant = set_up()
    old = steps.push_settings(tenant)
    new = steps.push_settings(tenant, new_value=True)
    assert new.fresh and new.header_value != old.header_value
    acu.deliver = django_deliverer(client)
    acu.configure_push(old.url, old.header_name, old.header_value, max_attempts=1)
    acu.control("person_edit_bill", type="Bill", nbr="000001", Description="changed")
    assert acu.push_log[-1]["status"] == 401  # the old value no longer opens the door
    acu.configure_push(new.url, new.header_name, new.header_value, max_attempts=1)
    acu.control("person_edit_bill", type="Bill", nbr="000002", Description="changed")
    assert acu.push_log[-1]["status"] == 200
