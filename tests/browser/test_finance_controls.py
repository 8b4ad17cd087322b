"""The finance controls' console pages in a real browser: an administrator sets a flow's controls (a bad
block is refused with the field named), an operator sees the stuck approvals on the dashboard and clears
a duplicate hold with a reason (audited); another tenant's pages answer 404."""

from __future__ import annotations

import json

from django.urls import reverse

from audit.models import AuditEntry
from integrations.models import ControlHold, Flow, RecordLink, Tenant
from mappings.models import UserMapping
from tests.security.tenancy_world import MARK, build

PM, CONTROLLER = "1100000000000401", "1100000000000402"


def login(page, base, user, password="console-pass-123"):
    user.set_password(password)
    user.save()
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")


def test_an_administrator_sets_the_controls_and_an_operator_clears_a_hold(
    live_server, page, shot, django_user_model, settings
):
    settings.HTTP_MAX_RETRIES = 0
    a, b, users = build(django_user_model)
    tenant = a[Tenant]
    for email, gid in (("pm@alpha.example", PM), ("controller@alpha.example", CONTROLLER)):
        UserMapping.objects.create(tenant=tenant, email=email, asana_user_gid=gid)
    base = live_server.url
    flow = a[Flow]
    url = base + reverse("admin:integrations_flow_controls", args=[flow.pk])

    login(page, base, users["administer"])
    page.goto(url)
    assert "Segregation of duties" in page.content()
    overlapping = {
        "tiers": {
            "enabled": True,
            "tiers": [
                {"name": "small", "above": 0, "up_to": 60000, "levels": [{"name": "PM", "approvers": [PM]}]},
                {"name": "large", "above": 50000, "levels": [{"name": "Controller"}]},
            ],
        }
    }
    page.fill("#controls-form textarea", json.dumps(overlapping))
    page.click("#controls-form input[type=submit]")
    errors = page.locator("#controls-errors").inner_text()
    assert "controls.tiers.tiers[1]: overlaps controls.tiers.tiers[0]" in errors
    assert "controls.tiers.tiers[1].levels[0]: no approver" in errors
    shot("controls-01-refused")
    assert "controls" not in (Flow.objects.get(pk=flow.pk).options or {})
    construction = {
        "segregation_of_duties": {"enabled": True, "allowed_approvers": [PM, CONTROLLER]},
        "tiers": {
            "enabled": True,
            "tiers": [
                {"name": "small", "above": 0, "up_to": 50000, "levels": [{"name": "PM", "approvers": [PM]}]},
                {
                    "name": "large",
                    "above": 50000,
                    "levels": [
                        {"name": "PM", "approvers": [PM]},
                        {"name": "Controller", "approvers": [CONTROLLER]},
                    ],
                },
            ],
        },
        "duplicates": {"enabled": True, "window_days": 30},
    }
    page.fill("#controls-form textarea", json.dumps(construction))
    page.click("#controls-form input[type=submit]")
    page.wait_for_selector("#controls-state")
    assert "The finance controls were saved" in page.content()
    assert "large (&gt; 50,000.00, no upper bound): PM + Controller" in page.content()
    shot("controls-02-saved")
    assert Flow.objects.get(pk=flow.pk).options["controls"] == construction
    assert AuditEntry.objects.filter(operation="controls.configured", tenant=tenant).count() == 1

    # The operator: a stuck approval on the dashboard, a duplicate hold to clear.
    link = a[RecordLink]
    AuditEntry.objects.create(
        tenant=tenant,
        flow=flow,
        record_link=link,
        operation="controls.escalation",
        status="succeeded",
        error="pending for 3 business days (limit 3)",
        payload={"amount": "62000.00", "discount_amount": "1240.00", "discount_date": "2026-12-18"},
    )
    AuditEntry.objects.create(
        tenant=b[Tenant],
        flow=b[Flow],
        record_link=b[RecordLink],
        operation="controls.escalation",
        status="succeeded",
        error=f"{MARK} stuck",
        payload={"amount": "1.00"},
    )
    page.context.clear_cookies()
    login(page, base, users["operate"])
    panel = page.locator("#stuck-approvals").inner_text()
    assert "62000.00" in panel and "1240.00 by 2026-12-18" in panel and MARK not in panel.lower()
    shot("controls-03-stuck-approvals")
    page.goto(url)
    assert page.locator("#controls-form").count() == 0  # the operate role sees, does not change
    hold = a[ControlHold]
    page.click(f"#controls-holds a[href$='/{hold.pk}/clear/']")
    page.click("#hold-clear input[type=submit]")  # no reason
    assert "say why" in page.locator("#hold-error").inner_text()
    page.fill("#hold-clear textarea", "Vendor confirmed a second delivery")
    shot("controls-04-clear-hold")
    page.click("#hold-clear input[type=submit]")
    page.wait_for_selector("#result_list")
    hold.refresh_from_db()
    assert hold.cleared_by == users["operate"].username and hold.clear_reason.startswith("Vendor confirmed")
    cleared = AuditEntry.objects.get(operation="controls.duplicate_hold_cleared")
    assert cleared.tenant == tenant and "Vendor confirmed" in cleared.error

    for name, obj in (
        ("integrations_flow_controls", b[Flow]),
        ("integrations_controlhold_clear", b[ControlHold]),
    ):
        other = page.goto(base + reverse(f"admin:{name}", args=[obj.pk]))
        assert other.status == 404, name
        assert MARK not in page.content().lower()
