"""A record parked for a person (create outcome unknown) is visible on the dashboard and decided from
the console, once, by a user who operates its tenant; the decision is in the audit trail."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from integrations.membership import Role, TenantMembership
from integrations.models import RecordLink, Tenant


@pytest.fixture
def parked_link(db):
    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline")
    return RecordLink.objects.create(
        tenant=tenant,
        kind=RecordLink.Kind.BILL,
        acumatica_type="Bill",
        acumatica_ref="000321",
        state=RecordLink.State.NEEDS_PERSON,
        state_reason="create outcome unknown — needs a person",
        review={"candidates": [{"gid": "1300000000000777", "name": "renamed"}], "key": "Bill/000321"},
    )


def operator(django_user_model, tenant, role=Role.OPERATE):
    user = django_user_model.objects.create_user("olive", "olive@example.com", "pw-olive-123", is_staff=True)
    TenantMembership.objects.create(user=user, tenant=tenant, role=role)
    return user


def test_the_dashboard_shows_records_waiting_for_a_person(client, parked_link, django_user_model):
    client.force_login(operator(django_user_model, parked_link.tenant))
    page = client.get("/admin/").content.decode()
    assert "1 record(s) wait for a person" in page


def test_an_operator_adopts_the_only_candidate_from_the_console(client, parked_link, django_user_model):
    client.force_login(operator(django_user_model, parked_link.tenant))
    response = client.post(
        "/admin/integrations/recordlink/",
        {"action": "adopt_only_candidate", "_selected_action": [parked_link.pk]},
        follow=True,
    )
    assert response.status_code == 200
    parked_link.refresh_from_db()
    assert (parked_link.state, parked_link.asana_task_gid) == ("linked", "1300000000000777")
    entry = AuditEntry.objects.get(operation="resolve_unknown_create")
    assert entry.actor == "console:olive" and entry.record_link_id == parked_link.pk


def test_a_viewer_cannot_decide(client, parked_link, django_user_model):
    client.force_login(operator(django_user_model, parked_link.tenant, role=Role.VIEW))
    client.post(
        "/admin/integrations/recordlink/",
        {"action": "create_new_task", "_selected_action": [parked_link.pk]},
    )
    parked_link.refresh_from_db()
    assert parked_link.state == RecordLink.State.NEEDS_PERSON
