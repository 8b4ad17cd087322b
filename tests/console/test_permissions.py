"""The three console roles, each rule checked through the real admin with the test client."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.urls import reverse

from integrations.console.permissions import OPERATOR_GROUP, VIEW_GROUP, can_edit_connections, can_replay

from ..flows.documents.test_documents_support import *  # noqa: F403
from .support import *  # noqa: F403


def test_migration_creates_both_groups_with_their_permissions(db):
    view = set(Group.objects.get(name=VIEW_GROUP).permissions.values_list("codename", flat=True))
    ops = set(Group.objects.get(name=OPERATOR_GROUP).permissions.values_list("codename", flat=True))
    assert {"view_tenant", "view_recordlink", "view_auditentry", "view_fieldmapping"} <= view
    assert not {c for c in view if not c.startswith("view_")}
    assert ops - view == {"replay_records", "run_sync", "change_alert"}


def test_roles(viewer, operator, staff_user):
    assert not can_replay(viewer) and can_replay(operator) and can_replay(staff_user)
    assert not can_edit_connections(viewer) and not can_edit_connections(operator)
    assert can_edit_connections(staff_user)


def test_viewer_sees_but_cannot_edit_connections_or_replay(client, viewer, synced_bill):
    client.force_login(viewer)
    tenant = synced_bill.tenant
    page = client.get(reverse("admin:integrations_tenant_change", args=[tenant.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    posted = client.post(reverse("admin:integrations_tenant_change", args=[tenant.pk]), {"name": "Hacked"})
    assert posted.status_code == 403
    tenant.refresh_from_db()
    assert tenant.name != "Hacked"
    assert (
        client.get(reverse("admin:integrations_recordlink_lineage", args=[synced_bill.pk])).status_code == 200
    )
    assert (
        client.get(reverse("admin:integrations_recordlink_replay", args=[synced_bill.pk])).status_code == 403
    )
    changelist = client.get(reverse("admin:integrations_recordlink_changelist"))
    assert b"replay_selected" not in changelist.content
    assert (
        client.get(reverse("admin:integrations_flow_dry_run", args=[synced_bill.flow_id])).status_code == 403
    )


def test_operator_may_replay_and_sync_but_not_edit_connections(client, operator, synced_bill):
    client.force_login(operator)
    tenant = synced_bill.tenant
    assert client.post(reverse("admin:integrations_tenant_change", args=[tenant.pk]), {}).status_code == 403
    changelist = client.get(reverse("admin:integrations_recordlink_changelist"))
    assert b"replay_selected" in changelist.content
    flows = client.get(reverse("admin:integrations_flow_changelist"))
    assert b"dry_run" in flows.content
    assert (
        client.get(reverse("admin:integrations_recordlink_replay", args=[synced_bill.pk])).status_code == 200
    )


def test_admin_edits_connections(admin_client, docs_tenant):
    page = admin_client.get(reverse("admin:integrations_tenant_change", args=[docs_tenant.pk]))
    assert page.status_code == 200 and b'name="_save"' in page.content


def test_staff_without_a_group_sees_nothing(client, django_user_model, db):
    from .support import make_user

    client.force_login(make_user(django_user_model, "nobody", None))
    assert client.get(reverse("admin:integrations_recordlink_changelist")).status_code == 403
