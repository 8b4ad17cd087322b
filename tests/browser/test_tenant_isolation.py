"""An operator of one tenant, in a real browser: the dashboard, the record list, lineage and replay show
only that tenant; the other tenant's lineage and replay pages are 404s."""

from __future__ import annotations

from django.urls import reverse

from integrations.models import RecordLink, Tenant
from tests.security.tenancy_world import MARK, build


def test_an_operator_sees_only_their_tenant(live_server, page, shot, django_user_model, settings):
    settings.HTTP_MAX_RETRIES = 0
    a, b, users = build(django_user_model)
    operator = users["operate"]
    operator.set_password("operator-pass-123")
    operator.save()
    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", operator.username)
    page.fill("#id_password", "operator-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    shot("tenancy-01-dashboard")
    tenants = page.locator("table.tenant-health").evaluate_all("els => els.map(e => e.dataset.tenant)")
    assert tenants == [a[Tenant].slug]
    assert MARK not in page.content().lower()
    assert page.locator("#cluster-health").count() == 1

    page.goto(base + reverse("admin:integrations_recordlink_changelist"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1 and MARK not in page.content().lower()

    lineage = page.goto(base + reverse("admin:integrations_recordlink_lineage", args=[a[RecordLink].pk]))
    assert lineage.status == 200
    shot("tenancy-02-lineage")
    body = page.content()
    assert a[RecordLink].acumatica_ref in body and MARK not in body.lower()
    assert "bill.create_task" in body  # the tenant's own audit entry is on the timeline

    replay = page.goto(base + reverse("admin:integrations_recordlink_replay", args=[a[RecordLink].pk]))
    assert replay.status == 200
    shot("tenancy-03-replay")
    assert "could not read" in page.content()  # the vendor is down: the preview says so, no 500

    for name in ("integrations_recordlink_lineage", "integrations_recordlink_replay"):
        other = page.goto(base + reverse(f"admin:{name}", args=[b[RecordLink].pk]))
        assert other.status == 404, name
        assert MARK not in page.content().lower()
