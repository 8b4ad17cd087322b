"""The console shell: write-only secrets, read-only audit, the task queue admin, the site title."""

import pytest
from django.urls import reverse

from audit.models import ApiCall, AuditEntry
from integrations.models import AcumaticaConnection, Tenant

PASSWORD = "Acumatica-Pw-Never-Shown-42"


@pytest.fixture
def acu(tenant):
    return AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url="https://acme.acumatica.com",
        username="api",
        password=PASSWORD,
        client_secret="cs-never-shown-123",
        auth_mode="oauth_password",
        client_id="x@Acme",
    )


def tenant_form_data(tenant, acu, **acu_overrides):
    """The POST the tenant change page sends, with one Acumatica connection inline."""
    data = {
        "slug": tenant.slug,
        "name": tenant.name,
        "active": "on",
        "acumatica-TOTAL_FORMS": "1",
        "acumatica-INITIAL_FORMS": "1",
        "acumatica-MIN_NUM_FORMS": "0",
        "acumatica-MAX_NUM_FORMS": "1",
        "acumatica-0-id": str(acu.pk),
        "acumatica-0-tenant": str(tenant.pk),
        "acumatica-0-instance_url": acu.instance_url,
        "acumatica-0-endpoint_name": "Default",
        "acumatica-0-endpoint_version": "24.200.001",
        "acumatica-0-auth_mode": "oauth_password",
        "acumatica-0-client_id": "x@Acme",
        "acumatica-0-username": "api",
        "acumatica-0-password": "",
        "acumatica-0-client_secret": "",
        "acumatica-0-refresh_token": "",
        "acumatica-0-push_secret": "",
        "acumatica-0-push_header_name": "X-ML-Connector-Secret",
        "acumatica-0-max_concurrency": "2",
        "acumatica-0-max_api_sessions": "1",
        "acumatica-0-tenant_login_name": "",
        "acumatica-0-branch": "",
    }
    for prefix in ("asana", "sage100", "flows"):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update({f"acumatica-0-{k}": v for k, v in acu_overrides.items()})
    return data


@pytest.mark.django_db
def test_secret_is_never_rendered_back(admin_client, tenant, acu):
    html = admin_client.get(reverse("admin:integrations_tenant_change", args=[tenant.pk])).content.decode()
    assert "ml-connector console" in html
    assert PASSWORD not in html and "cs-never-shown-123" not in html
    assert "A value is set; leave blank to keep it." in html
    assert "Not set." in html  # the push secret


@pytest.mark.django_db
def test_blank_secret_keeps_stored_value(admin_client, tenant, acu):
    url = reverse("admin:integrations_tenant_change", args=[tenant.pk])
    response = admin_client.post(url, tenant_form_data(tenant, acu, username="api2"))
    assert response.status_code == 302, response.content.decode()[:3000]
    acu.refresh_from_db()
    assert acu.username == "api2"
    assert acu.password == PASSWORD
    assert acu.client_secret == "cs-never-shown-123"


@pytest.mark.django_db
def test_new_secret_replaces_and_clear_empties(admin_client, tenant, acu):
    url = reverse("admin:integrations_tenant_change", args=[tenant.pk])
    admin_client.post(url, tenant_form_data(tenant, acu, password="New-Pw-987654"))
    acu.refresh_from_db()
    assert acu.password == "New-Pw-987654"
    admin_client.post(url, tenant_form_data(tenant, acu, client_secret__clear="on"))
    acu.refresh_from_db()
    assert acu.client_secret == "" and acu.password == "New-Pw-987654"


@pytest.mark.django_db
def test_console_validates_the_same_rules_as_config_apply(admin_client, tenant, acu):
    url = reverse("admin:integrations_tenant_change", args=[tenant.pk])
    response = admin_client.post(
        url, tenant_form_data(tenant, acu, instance_url="http://erp.acme.example", endpoint_version="24.2")
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "only https:// is allowed" in html
    assert "must look like 24.200.001" in html
    acu.refresh_from_db()
    assert acu.instance_url == "https://acme.acumatica.com"


@pytest.mark.django_db
def test_add_tenant_with_connection_from_console(admin_client):
    data = {"slug": "newco", "name": "NewCo Builders", "active": "on"}
    for prefix in ("acumatica", "asana", "sage100", "flows"):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    data.update(
        {
            "asana-TOTAL_FORMS": "1",
            "asana-0-api_base_url": "https://app.asana.com/api/1.0",
            "asana-0-auth_mode": "pat",
            "asana-0-personal_access_token": "2/1/2:pat-from-console",
            "asana-0-workspace_gid": "1200000000000001",
            "asana-0-requests_per_minute": "1500",
            "asana-0-max_writes_in_flight": "10",
            "asana-0-client_id": "",
            "asana-0-client_secret": "",
            "asana-0-refresh_token": "",
            "asana-0-connector_user_gid": "",
        }
    )
    response = admin_client.post(reverse("admin:integrations_tenant_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Tenant.objects.get(slug="newco").asana.personal_access_token == "2/1/2:pat-from-console"


@pytest.mark.django_db
def test_audit_models_are_read_only(admin_client, tenant):
    entry = AuditEntry.objects.create(tenant=tenant, operation="create_task", status="succeeded")
    for name in ("auditentry", "apicall", "inboundevent", "syncrun"):
        assert admin_client.get(reverse(f"admin:audit_{name}_changelist")).status_code == 200
        assert admin_client.get(reverse(f"admin:audit_{name}_add")).status_code == 403
    page = admin_client.get(reverse("admin:audit_auditentry_change", args=[entry.pk]))
    assert page.status_code == 200 and b'type="submit" value="Save"' not in page.content
    response = admin_client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


@pytest.mark.django_db
def test_audit_rows_are_append_only(tenant):
    from django.utils import timezone

    from audit.models import AppendOnlyError

    entry = AuditEntry.objects.create(tenant=tenant, operation="x", status="failed")
    entry.status = "succeeded"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(pk=entry.pk).update(status="succeeded")
    with pytest.raises(AppendOnlyError):
        ApiCall.objects.create(system="x", method="GET", url="u", started_at=timezone.now()).delete()


@pytest.mark.django_db
def test_task_queue_admin_is_reachable(admin_client):
    assert admin_client.get(reverse("admin:django_q_schedule_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:django_q_failure_changelist")).status_code == 200
    index = admin_client.get(reverse("admin:index")).content.decode()
    assert "Operator console" in index and "Task queue (django-q2)" in index


@pytest.mark.django_db
def test_console_requires_login(client):
    response = client.get(reverse("admin:integrations_tenant_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
