"""Every URL of the operator console, enumerated from the admin site (`admin.site._registry` and each
ModelAdmin's own `get_urls()`, so a page added later is covered without touching this file):
- anonymous visitors and logged-in non-staff users are sent to the login page, GET or POST, and a POST
  changes nothing;
- the view-only operator group gets 403 on every add/change/delete POST, and no POST anywhere — actions
  on every changelist (sync, replay, test connections, register webhooks, resolve, delete…), replay,
  dry run, field discovery — writes a row or queues a task;
- a superuser sees every changelist and change page, and no stored secret appears in any of them.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.test import RequestFactory
from django.urls import reverse

from audit.models import Alert, ApiCall, InboundEvent, SyncRun
from integrations.console.permissions import VIEW_GROUP
from integrations.models import AsanaWebhook, Sage100Connection, TenantMembership
from integrations.secrets import encrypted_fields
from tests.console.support import *  # noqa: F403
from tests.flows.documents.test_documents_support import *  # noqa: F403
from tests.flows.documents.test_documents_support import PUSH_SECRET, D

APPS = ("integrations", "mappings", "audit", "django_q", "auth")
SAGE_API_KEY = "console-sage-api-key-0123456789"
SAGE_SIGNING_SECRET = "console-sage-signing-secret-0123456789"
WEBHOOK_SECRET = "console-asana-webhook-secret-0123456789abcdef"


@pytest.fixture
def console_data(synced_bill):
    """A synced bill (tenant, connections with secrets, flow, link, run, audit entries, API calls) plus
    a row of every other model the console shows."""
    tenant = synced_bill.tenant
    Sage100Connection.objects.create(
        tenant=tenant,
        agent_url="https://sage.ridgeline.lan:8443",
        api_key=SAGE_API_KEY,
        signing_secret=SAGE_SIGNING_SECRET,
        company_code="ABC",
    )
    AsanaWebhook.objects.create(
        tenant=tenant,
        resource_gid=D["ap_project"],
        webhook_gid="1300000000000001",
        secret=WEBHOOK_SECRET,
        state=AsanaWebhook.State.ACTIVE,
    )
    InboundEvent.objects.create(
        tenant=tenant, source=InboundEvent.Source.ACUMATICA_PUSH, raw_body=b'{"Query": "q", "Id": "1"}'
    )
    Alert.objects.create(
        tenant=tenant, kind=Alert.Kind.RECORD_FAILING, subject="bill 1", last_raised_at=synced_bill.updated_at
    )
    SyncRun.objects.create(tenant=tenant, flow=synced_bill.flow, status=SyncRun.Status.SUCCEEDED)
    from django_q.models import Schedule

    Schedule.objects.create(func="integrations.flows.operations.alerts.sweep", name="console-test-schedule")
    assert ApiCall.objects.exists()
    return synced_bill


def first_pk(model) -> str:
    obj = model._default_manager.order_by("pk").first()
    return str(obj.pk) if obj else "1"


def console_urls() -> list[tuple[str, str]]:
    """(url name, path) of every named admin URL, with the first row's pk for object URLs."""
    urls = [("index", reverse("admin:index"))]
    for app_label in APPS:
        urls.append((f"app_list {app_label}", reverse("admin:app_list", args=[app_label])))
    for model, model_admin in admin.site._registry.items():
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name:
                continue
            params = list(pattern.pattern.converters)
            args = [first_pk(model)] if params else []
            if name.endswith("_password_change"):
                args = [first_pk(model)]
            urls.append((name, reverse(f"admin:{name}", args=args)))
    return urls


def every_action_name(superuser) -> set[str]:
    request = RequestFactory().get("/admin/")
    request.user = superuser
    names: set[str] = set()
    for model_admin in admin.site._registry.values():
        names |= set(model_admin.get_actions(request))
    return names


def snapshot() -> dict[str, list]:
    """Every row of every console model (their values), to prove a request changed nothing."""
    rows = {}
    for app_label in ("integrations", "mappings", "audit", "django_q"):
        for model in apps.get_app_config(app_label).get_models():
            rows[model._meta.label] = sorted(
                (tuple(sorted((k, repr(v)) for k, v in row.items())) for row in model._base_manager.values()),
            )
    rows["auth.Group"] = sorted(Group.objects.values_list("name", flat=True))
    return rows


@pytest.fixture
def queued(monkeypatch):
    calls: list = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *a, **k: calls.append(a))
    return calls


def test_the_enumeration_covers_the_console(console_data):
    names = {name for name, _ in console_urls()}
    for expected in (
        "integrations_tenant_change",
        "integrations_recordlink_lineage",
        "integrations_recordlink_replay",
        "integrations_flow_dry_run",
        "integrations_flow_discover_fields",
        "audit_syncrun_progress",
        "mappings_fieldmapping_change",
        "audit_apicall_change",
        "audit_alert_change",
    ):
        assert expected in names
    assert len(names) > 100


@pytest.mark.parametrize("who", ["anonymous", "not staff"])
def test_anonymous_and_non_staff_are_sent_to_login_for_every_url_get_or_post(
    client, django_user_model, console_data, queued, who
):
    if who == "not staff":
        user = django_user_model.objects.create_user("customer", "c@example.com", "pw-12345678")
        client.force_login(user)
    before = snapshot()
    for name, url in console_urls():
        for method in ("get", "post"):
            response = getattr(client, method)(url, {"action": "delete_selected", "post": "yes"})
            assert response.status_code == 302, (name, method, response.status_code)
            assert response.url.startswith(reverse("admin:login")), (name, response.url)
    assert snapshot() == before
    assert queued == []


def test_view_only_operators_cannot_change_anything(
    client, django_user_model, console_data, queued, staff_user
):
    viewer = django_user_model.objects.create_user("viewer2", "v@example.com", "pw-12345678", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEW_GROUP))
    TenantMembership.objects.create(user=viewer, tenant=console_data.tenant, role="view")
    client.force_login(viewer)
    actions = every_action_name(staff_user)
    assert {"sync_now", "dry_run", "replay_selected", "test_connections", "register_webhooks"} <= actions
    before = snapshot()
    refused = 0
    for name, url in console_urls():
        response = client.post(url, {"name": "changed by a viewer", "post": "yes", "confirm": "yes"})
        if name.endswith(("_change", "_delete")) and _model_is_empty(name, scoped_only=True):
            assert response.status_code == 404, (name, response.status_code)  # no such row
        elif name.endswith(("_add", "_change", "_delete", "_replay", "_dry_run", "_discover_fields")):
            assert response.status_code == 403, (name, response.status_code)
            refused += 1
        else:
            # 404: an app the viewer has no permission in does not exist for them.
            assert response.status_code in (200, 302, 403, 404, 405), (name, response.status_code)
        if name.endswith("_changelist"):
            model = next(m for m, ma in admin.site._registry.items() if name.startswith(_prefix(m)))
            pks = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:50]]
            for action in sorted(actions):
                client.post(url, {"action": action, "_selected_action": pks, "post": "yes", "confirm": "1"})
    assert refused > 50
    assert snapshot() == before
    assert queued == []
    # The same action posted by an admin does act: the refusals above are not a broken form.
    client.force_login(staff_user)
    flow_pk = str(console_data.flow_id)
    client.post(
        reverse("admin:integrations_flow_changelist"), {"action": "sync_now", "_selected_action": [flow_pk]}
    )
    assert len(queued) == 1


def _prefix(model) -> str:
    return f"{model._meta.app_label}_{model._meta.model_name}_"


def _model_is_empty(url_name: str, scoped_only: bool = False) -> bool:
    """The URL names pk 1 of a model with no row (a tenant-scoped admin answers 404 before it checks
    permissions; a superuser-only one refuses first)."""
    from integrations.console.tenancy import TenantScopedAdmin

    model, model_admin = next(
        (m, ma) for m, ma in admin.site._registry.items() if url_name.startswith(_prefix(m))
    )
    if scoped_only and not isinstance(model_admin, TenantScopedAdmin):
        return False
    return not model._default_manager.exists()


def test_superuser_pages_never_render_a_stored_secret(admin_client, console_data):
    secrets = set()
    for model, fields in encrypted_fields():
        for obj in model._base_manager.all():
            secrets |= {getattr(obj, f.name) for f in fields if len(getattr(obj, f.name) or "") >= 6}
    assert {SAGE_API_KEY, SAGE_SIGNING_SECRET, WEBHOOK_SECRET, PUSH_SECRET, D["pat"]} <= secrets
    pages = 0
    for name, url in console_urls():
        if not name.endswith(("_changelist", "_change", "_add", "_lineage", "_progress", "_history")):
            continue
        response = admin_client.get(url)
        allowed = (200, 302, 403) if name.endswith("_add") else (200, 302)  # read-only models: no add
        if name.endswith(("_change", "_history")) and _model_is_empty(name):
            allowed = (404,)  # the URL names pk 1 of a model with no row: a missing object is a 404
        assert response.status_code in allowed, (name, response.status_code)
        html = response.content.decode()
        for secret in secrets:
            assert secret not in html, (name, secret[:4])
        pages += 1
    assert pages > 60
