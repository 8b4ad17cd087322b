"""The wizard's pages in the console, step by step with Django's test client, and their tenancy."""

from __future__ import annotations

import pytest
from django.urls import reverse

from integrations.models import Flow, SetupProgress, Tenant
from mappings.models import FieldMapping
from sandbox import acumatica as acu_sim

from ..console.support import make_user
from ..flows.inbound.harness import django_deliverer
from .conftest import ACU_URL, ASANA_URL, D, F, writes

STEP1 = {
    "name": "Ridgeline Builders",
    "slug": "ridgeline",
    "instance_url": ACU_URL,
    "endpoint_version": "24.200.001",
    "auth_mode": "oauth_password",
    "client_id": acu_sim.DEMO_CLIENT_ID,
    "client_secret": acu_sim.DEMO_CLIENT_SECRET,
    "username": acu_sim.DEMO_USER,
    "password": acu_sim.DEMO_PASSWORD,
    "tenant_login_name": "Ridgeline",
}


def step(slug: str, n: int, **query) -> str:
    url = reverse("admin:setup_step", args=[slug, n])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def public_url(settings):
    settings.PUBLIC_BASE_URL = "https://connector.ridgeline.test"
    settings.ALLOWED_HOSTS = ["*"]


def test_the_whole_wizard_in_the_console(admin_client, mounted, acu, asana, public_url):
    asana.deliver = django_deliverer(admin_client)
    # 1: the endpoint versions are read and offered, then the credentials tested
    page = admin_client.post(reverse("admin:setup_new"), {**STEP1, "action": "discover"})
    html = page.content.decode()
    assert page.status_code == 200 and 'value="24.200.001"' in html and "Acumatica build" in html
    assert not Tenant.objects.exists()
    page = admin_client.post(reverse("admin:setup_new"), {**STEP1, "action": "save"})
    assert page.status_code == 302 and page.url == step("ridgeline", 1)
    html = admin_client.get(page.url).content.decode()
    assert "Verified — authentication: signed in by OAuth 2.0 password grant" in html and 'id="next"' in html
    tenant = Tenant.objects.get(slug="ridgeline")

    # 2: the token tested, the workspace picked
    page = admin_client.post(
        step("ridgeline", 2),
        {"api_base_url": ASANA_URL, "token": D["pat"], "requests_per_minute": 1500, "action": "test"},
    )
    assert "the token acts as <b>ML Connector Bot</b>" in page.content.decode()
    page = admin_client.post(
        step("ridgeline", 2),
        {
            "api_base_url": ASANA_URL,
            "token": D["pat"],
            "workspace": D["workspace"],
            "requests_per_minute": 1500,
            "action": "save",
        },
    )
    assert page.status_code == 302 and page.url == step("ridgeline", 3)

    # 3: the fields proposed by name; a date field for the amount is refused, nothing stored
    html = admin_client.get(step("ridgeline", 3, flow="bills", project=D["ap_project"])).content.decode()
    assert f'<option value="{F["amount"]}" selected>Amount (number)</option>' in html
    assert "ABCCONCRETE · ABC Concrete Supply" in html  # the enum vendor field's matches
    form = {
        "project": D["ap_project"],
        "section": D["ap_sections"]["awaiting_approval"],
        "field_amount": F["due_date"],
        "field_due_date": F["due_date"],
        "field_vendor": F["vendor"],
        "field_reference": F["erp_reference"],
        "action": "save",
    }
    page = admin_client.post(step("ridgeline", 3, flow="bills"), form)
    assert page.status_code == 200 and "&#x27;Due date&#x27; is a date field" in page.content.decode()
    assert not Flow.objects.exists()
    page = admin_client.post(step("ridgeline", 3, flow="bills"), {**form, "field_amount": F["amount"]})
    assert page.status_code == 302 and page.url == step("ridgeline", 3, flow="purchase_orders")
    assert FieldMapping.objects.filter(flow__tenant=tenant).count() == 3
    page = admin_client.post(step("ridgeline", 3, flow="purchase_orders"), {"action": "skip"})
    assert page.url == step("ridgeline", 4)

    # 4: the fit report, read-only
    acu_mark, asana_mark = len(acu.request_log), len(asana.request_log)
    assert admin_client.post(step("ridgeline", 4)).status_code == 302
    html = admin_client.get(step("ridgeline", 4)).content.decode()
    assert 'id="fit-report"' in html and 'data-key="Bill/000001"' in html and "ReleaseBill" in html
    assert not writes(acu, acu_mark) and not writes(asana, asana_mark)

    # 5: the push settings, then the switch
    html = admin_client.get(step("ridgeline", 5)).content.decode()
    assert f"/hooks/acumatica/{tenant.acumatica.push_uuid}/" in html and "X-ML-Connector-Secret" in html
    tenant.acumatica.refresh_from_db()
    secret = tenant.acumatica.push_secret
    assert 'id="push-secret"' in html and secret in html  # made now, shown this once
    html = admin_client.get(step("ridgeline", 5)).content.decode()
    assert secret not in html and 'id="push-secret-set"' in html
    html = admin_client.post(step("ridgeline", 5), {"action": "new_push_value"}).content.decode()
    tenant.acumatica.refresh_from_db()
    assert tenant.acumatica.push_secret != secret and tenant.acumatica.push_secret in html
    assert not Flow.objects.filter(enabled=True).exists()
    admin_client.post(step("ridgeline", 5), {"action": "switch_on"})
    assert set(Flow.objects.values_list("enabled", flat=True)) == {True}
    html = admin_client.get(step("ridgeline", 5)).content.decode()
    assert "handshake done" in html and len(asana.webhooks) == 1
    assert SetupProgress.objects.get(tenant=tenant).switched_on_at is not None
    # back and forward: an earlier step shows what was saved
    html = admin_client.get(step("ridgeline", 1)).content.decode()
    assert 'value="Ridgeline Builders"' in html and acu_sim.DEMO_CLIENT_SECRET not in html


def test_a_step_not_reached_sends_back_to_the_current_one(admin_client, db):
    tenant = Tenant.objects.create(slug="acme", name="Acme")
    SetupProgress.objects.create(tenant=tenant, step=2)
    page = admin_client.get(step("acme", 4))
    assert page.status_code == 302 and page.url == step("acme", 2)


def test_the_wizard_is_tenant_scoped(client, db, django_user_model):
    mine = Tenant.objects.create(slug="mine", name="Mine")
    other = Tenant.objects.create(slug="other", name="Other")
    Tenant.objects.create(slug="watched", name="Watched")
    admin = make_user(django_user_model, "adm", None, [mine], "administer")
    make_user(django_user_model, "watcher", None, [], "view")
    from integrations.models import TenantMembership

    TenantMembership.objects.create(user=admin, tenant=Tenant.objects.get(slug="watched"), role="operate")
    client.force_login(admin)
    assert client.get(step("mine", 1)).status_code == 200
    assert client.get(step("other", 1)).status_code == 404  # another tenant does not exist for them
    assert client.get(step("watched", 1)).status_code == 403  # theirs, but below administer
    assert client.get(reverse("admin:setup_new")).status_code == 403  # a new tenant is a superuser's
    index = client.get(reverse("admin:setup_index")).content.decode()
    assert 'data-tenant="mine"' in index and "other" not in index and 'id="setup-new"' not in index
    assert other.pk
