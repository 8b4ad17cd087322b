"""Shared helpers for the console tests: users in each operator group, a synced bill."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from integrations.console.permissions import OPERATOR_GROUP, VIEW_GROUP


def make_user(django_user_model, name: str, group: str | None, tenants=(), role: str = "view"):
    """A staff user in `group` (model permissions) and a member of `tenants` with `role`."""
    from integrations.models import TenantMembership

    user = django_user_model.objects.create_user(name, f"{name}@example.com", "pw-12345678", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    for tenant in tenants:
        TenantMembership.objects.create(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def viewer(db, django_user_model, docs_tenant):
    return make_user(django_user_model, "viewer", VIEW_GROUP, [docs_tenant], "view")


@pytest.fixture
def operator(db, django_user_model, docs_tenant):
    return make_user(django_user_model, "operator", OPERATOR_GROUP, [docs_tenant], "operate")


@pytest.fixture
def synced_bill(make_sync):
    """Bill 000001 synced to its Asana task; returns the RecordLink."""
    from integrations.models import RecordLink

    make_sync().process("Bill", "000001")
    return RecordLink.objects.get(acumatica_type="Bill", acumatica_ref="000001")
