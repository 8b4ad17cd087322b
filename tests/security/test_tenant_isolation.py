"""Tenant isolation, crawled from the admin site itself.

Two tenants with a row in every console model; a user per role (view, operate, administer) of
tenant A. Every URL every registered ModelAdmin serves (changelists, change / delete / history pages,
custom views: lineage, replay, dry run, progress, field discovery), every admin action, the index
(dashboard), the app lists and the autocomplete endpoint are requested by each of them:
- tenant B's objects answer 404, GET or POST, and nothing of B appears on any page or list;
- no action posted with B's rows selected changes a row or queues a task;
- tenant A's pages behave per role (view reads, operate replays / dry-runs / syncs, administer edits).
A new admin or custom view is covered without editing this file.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from integrations.console.tenancy import SuperuserOnlyAdmin, TenantScopedAdmin, tenant_path
from integrations.models import Flow, RecordLink, Tenant
from tests.security.tenancy_world import MARK, build, console_models

from .test_console_access import snapshot

ROLES = ("view", "audit", "operate", "administer")


@pytest.fixture
def world(db, django_user_model, settings):
    settings.HTTP_MAX_RETRIES = 0
    return build(django_user_model)


@pytest.fixture
def queued(monkeypatch):
    calls: list = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *a, **k: calls.append(a))
    return calls


def object_urls(rows: dict) -> list[tuple[str, type, str]]:
    """(url name, model, url) of every admin URL that names one object, for the object in `rows`."""
    out = []
    for model, model_admin in admin.site._registry.items():
        if model not in rows:
            continue
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if name and pattern.pattern.converters:
                out.append((name, model, reverse(f"admin:{name}", args=[rows[model].pk])))
    return out


def list_urls() -> list[tuple[str, type, str]]:
    out = [("index", None, reverse("admin:index"))]
    for label in ("integrations", "mappings", "audit"):
        out.append((f"app_list {label}", None, reverse("admin:app_list", args=[label])))
    for model in admin.site._registry:
        name = f"{model._meta.app_label}_{model._meta.model_name}_changelist"
        out.append((name, model, reverse(f"admin:{name}")))
    return out


def test_every_admin_is_scoped_or_superuser_only():
    for model, model_admin in admin.site._registry.items():
        assert isinstance(model_admin, (TenantScopedAdmin, SuperuserOnlyAdmin)), model
        if tenant_path(model) and not isinstance(model_admin, SuperuserOnlyAdmin):
            assert isinstance(model_admin, TenantScopedAdmin), model
    for model in console_models():
        assert tenant_path(model), f"{model} cannot reach a tenant: scope it or make it superuser-only"


def test_an_admin_registered_without_the_mixin_is_scoped_at_install():
    from django.contrib.admin import AdminSite

    from integrations.console.site import install
    from mappings.models import UserMapping

    site = AdminSite(name="probe")
    site.register(UserMapping, admin.ModelAdmin)
    site.register(Flow, admin.ModelAdmin)
    site.register(RecordLink, admin.ModelAdmin)
    from django_q.models import Schedule

    site.register(Schedule, admin.ModelAdmin)
    install(site)
    assert isinstance(site._registry[UserMapping], TenantScopedAdmin)
    assert isinstance(site._registry[Schedule], SuperuserOnlyAdmin)


def test_the_world_has_a_row_of_every_model(world):
    a, b, _ = world
    for model in console_models():
        assert model in a and model in b, model
    crawled = {name for name, _, _ in object_urls(b)}
    for expected in (
        "integrations_recordlink_lineage",
        "integrations_recordlink_replay",
        "integrations_flow_dry_run",
        "integrations_flow_discover_fields",
        "audit_syncrun_progress",
        "audit_inboundevent_change",
        "mappings_fieldmapping_delete",
        "integrations_tenant_history",
        "integrations_flow_controls",
        "integrations_controlhold_clear",
    ):
        assert expected in crawled


@pytest.mark.parametrize("role", ROLES)
def test_another_tenants_objects_answer_404_and_never_show(client, world, queued, role):
    a, b, users = world
    client.force_login(users[role])
    before = snapshot()
    for name, model, url in object_urls(b):
        for method in ("get", "post"):
            response = getattr(client, method)(url, {"name": "changed", "post": "yes", "entry": "1"})
            if isinstance(admin.site._registry[model], SuperuserOnlyAdmin):
                assert response.status_code == 403, (name, method, response.status_code)
            else:
                assert response.status_code == 404, (name, method, response.status_code)
    for name, model, url in list_urls():
        for query in ("", "?q=ltd", "?q=22", f"?tenant__id__exact={b[Tenant].pk}"):
            response = client.get(url + query)
            assert response.status_code in (200, 302, 403), (name, response.status_code)
            assert MARK not in response.content.decode().lower(), (name, query)
    for model, model_admin in admin.site._registry.items():
        if model not in b:
            continue
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for action in _all_actions(model_admin):
            response = client.post(
                changelist,
                {
                    "action": action,
                    "_selected_action": [str(b[model].pk)],
                    "post": "yes",
                    "select_across": "0",
                },
            )
            assert response.status_code in (200, 302, 403), (model, action, response.status_code)
    assert snapshot() == before
    assert queued == []
    found = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "mappings", "model_name": "usermapping", "field_name": "tenant", "term": ""},
    )
    ids = {r["id"] for r in found.json()["results"]}
    assert ids == {str(a[Tenant].pk)}


def _all_actions(model_admin) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(is_superuser=True, is_staff=True, is_active=True)
    return sorted(model_admin.get_actions(request))


@pytest.mark.parametrize("role", ROLES)
def test_own_tenant_pages_behave_per_role(client, world, queued, role):
    a, _, users = world
    client.force_login(users[role])
    status = {}
    for name, model, url in object_urls(a):
        response = client.get(url)
        status[name] = response.status_code
        assert response.status_code in (200, 302, 403), (name, response.status_code)
    operate = role in ("operate", "administer")
    assert status["integrations_recordlink_change"] == 200
    assert status["integrations_recordlink_lineage"] == 200
    assert status["audit_syncrun_progress"] == 200
    assert status["audit_inboundevent_change"] == 200
    assert status["integrations_recordlink_replay"] == (200 if operate else 403)
    assert status["audit_reconciliationrun_report"] == 200
    assert status["audit_reconciliationdifference_fix"] == (200 if operate else 403)
    assert status["integrations_flow_dry_run"] == (200 if operate else 403)
    assert status["integrations_flow_discover_fields"] == (302 if role == "administer" else 403)
    assert status["mappings_usermapping_delete"] == (200 if role == "administer" else 403)
    assert status["integrations_tenant_delete"] == 403  # a whole tenant: superusers only
    assert status["integrations_tenantmembership_change"] == 403
    # The replay preview against an unreachable vendor says why instead of failing.
    replay = client.get(reverse("admin:integrations_recordlink_replay", args=[a[RecordLink].pk]))
    if operate:
        assert b"could not read" in replay.content or b"lacks" in replay.content
    # Edits: only an administrator changes a mapping.
    from mappings.models import UserMapping

    um = a[UserMapping]
    url = reverse("admin:mappings_usermapping_change", args=[um.pk])
    posted = client.post(url, {"tenant": str(a[Tenant].pk), "email": "new@alpha.example", "active": "on"})
    um.refresh_from_db()
    if role == "administer":
        assert posted.status_code == 302 and um.email == "new@alpha.example"
    else:
        assert posted.status_code == 403 and um.email == "ap@alpha.example"
    # Sync now: operators queue it for their tenant's flow; viewers cannot.
    client.post(
        reverse("admin:integrations_flow_changelist"),
        {"action": "sync_now", "_selected_action": [str(a[Flow].pk)]},
    )
    assert len(queued) == (1 if operate else 0)
    if operate:
        assert queued[0][1] == a[Flow].pk


def test_an_administrator_cannot_move_a_row_to_another_tenant(client, world):
    from mappings.models import UserMapping

    a, b, users = world
    client.force_login(users["administer"])
    um = a[UserMapping]
    url = reverse("admin:mappings_usermapping_change", args=[um.pk])
    response = client.post(url, {"tenant": str(b[Tenant].pk), "email": um.email, "active": "on"})
    assert response.status_code == 200  # the form refuses the choice
    um.refresh_from_db()
    assert um.tenant_id == a[Tenant].pk
    add = client.post(
        reverse("admin:mappings_usermapping_add"), {"tenant": str(b[Tenant].pk), "email": "x@y.z"}
    )
    assert add.status_code == 200
    assert not UserMapping.objects.filter(email="x@y.z").exists()


def test_replay_preview_for_a_tenant_without_acumatica_says_what_is_missing(client, world):
    from integrations.models import AcumaticaConnection

    a, _, users = world
    AcumaticaConnection.objects.filter(tenant=a[Tenant]).delete()
    client.force_login(users["operate"])
    response = client.get(reverse("admin:integrations_recordlink_replay", args=[a[RecordLink].pk]))
    assert response.status_code == 200
    assert b"lacks a connection" in response.content
    assert b'value="yes"' not in response.content or b"disabled" in response.content


def test_the_dashboard_offers_a_dry_run_only_where_the_user_operates(client, world, django_user_model):
    from integrations.models import TenantMembership

    a, b, users = world
    user = users["operate"]
    TenantMembership.objects.create(user=user, tenant=b[Tenant], role="view")
    client.force_login(user)
    page = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:integrations_flow_dry_run", args=[a[Flow].pk]) in page
    assert reverse("admin:integrations_flow_dry_run", args=[b[Flow].pk]) not in page
    assert f'data-tenant="{MARK}"' in page  # a viewer of B sees B, without the operator's links


def test_a_superuser_grants_a_membership_and_the_user_becomes_staff(admin_client, world, django_user_model):
    from integrations.models import TenantMembership

    a, _, _ = world
    user = django_user_model.objects.create_user("newcomer", "n@alpha.example", "pw-12345678")
    response = admin_client.post(
        reverse("admin:integrations_tenantmembership_add"),
        {"user": str(user.pk), "tenant": str(a[Tenant].pk), "role": "operate"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_staff
    assert TenantMembership.objects.get(user=user).role == "operate"
