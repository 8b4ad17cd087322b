# ruff: noqa: F811  (pytest fixtures imported from tests.sage100.flow_harness)
"""Segregation of duties on purchase requests (issue 20), through the sandbox Asana (strict contract) and a
real Simulated Sage 100 agent: a request approved by its own requester, or by someone outside the allowed
approvers, creates no PO in Sage; its approval is reset on the task with a comment saying why; the
refusal is audited and listed in the console. An allowed approver's approval creates the PO once."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from integrations.console import dashboard
from integrations.flows.common.controls.config import validation_errors
from integrations.models import Flow, RecordLink, Tenant
from sandbox.asana import DEMO
from tests.sage100.flow_harness import pr_world  # noqa: F401

U = DEMO["users"]
BOB, ALICE, CAROL = U["bob"], U["alice"], U["carol"]  # Bob files the requests (harness)


def sod(w, **settings) -> None:
    w.flow.options = {
        **(w.flow.options or {}),
        "controls": {"segregation_of_duties": {"enabled": True, **settings}},
    }
    w.flow.save(update_fields=["options"])


def approve_as(w, gid: str, user: str) -> None:
    w.clock.now += 1
    w.asana.ui_update_task(gid, user, completed=True)


def refusals():
    return AuditEntry.objects.filter(operation="controls.segregation_of_duties", status="quarantined")


def test_a_request_approved_by_its_own_requester_creates_no_po(pr_world, admin_client):
    w = pr_world
    sod(w)
    gid = w.request_task(approved=False)  # Bob asks …
    approve_as(w, gid, BOB)  # … and approves his own request
    outcome = w.process(gid)
    assert outcome.startswith("refused: segregation of duties: the approver requested this purchase")
    assert w.backend.count_pos() == 0 and w.backend.find_by_external_id(gid) is None  # nothing in Sage
    assert w.asana.tasks[gid]["completed"] is False  # the approval was reset on the task …
    [comment] = w.comments(gid)  # … with one comment saying why
    assert "No purchase order was created" in comment and "requested this purchase" in comment
    [entry] = refusals()
    assert entry.flow_id == w.flow.pk and entry.record_key == gid
    assert entry.payload["approver"] == BOB and entry.payload["requester"] == BOB
    assert not RecordLink.objects.filter(asana_task_gid=gid).exists()  # the next approval starts afresh
    # The console lists it: the flow's finance-controls page and the dashboard's approvals tile.
    page = admin_client.get(reverse("admin:integrations_flow_controls", args=[w.flow.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and "controls.segregation_of_duties" in html
    assert "the approver requested this purchase" in html
    [row] = dashboard.build_dashboard(tenants=Tenant.objects.filter(pk=w.tenant.pk))
    assert "1 release(s) refused" in row.items["approvals"].reason
    # Nothing more happens while the task waits for a new approval.
    assert w.process(gid).startswith("not approved")
    # An allowed approver: the PO is created, once.
    approve_as(w, gid, ALICE)
    assert w.process(gid) == "PO 0000100 created"
    assert w.backend.count_pos(gid) == 1
    assert w.process(gid) == "already ordered: PO 0000100"
    assert w.backend.count_pos() == 1
    allowed = AuditEntry.objects.get(operation="controls.segregation_of_duties", status="succeeded")
    assert allowed.payload["approver"] == ALICE
    assert allowed.record_link is None or allowed.record_link.asana_task_gid == gid


def test_a_request_approved_outside_the_allowed_approvers_creates_no_po(pr_world):
    w = pr_world
    sod(w, allowed_approvers=[CAROL])
    gid = w.request_task(approved=False)
    approve_as(w, gid, ALICE)
    assert "is not an allowed approver" in w.process(gid)
    assert w.backend.count_pos() == 0 and w.asana.tasks[gid]["completed"] is False
    assert any("is not an allowed approver" in c for c in w.comments(gid))
    approve_as(w, gid, CAROL)
    assert w.process(gid) == "PO 0000100 created"
    assert w.backend.count_pos(gid) == 1


def test_the_requester_named_by_the_requested_by_field_may_not_approve(pr_world):
    w = pr_world
    field = w.asana.add_custom_field("Requested by", "people", projects=(DEMO["pr_project"],))
    w.flow.options = {"requester_field_gid": field}
    w.flow.save(update_fields=["options"])
    sod(w)
    gid = w.request_task(approved=False)  # Bob enters it for Carol
    w.asana.ui_update_task(gid, BOB, custom_fields={field: [CAROL]})
    approve_as(w, gid, BOB)  # the person who typed it in may approve it: Carol asked for it
    assert w.process(gid) == "PO 0000100 created"
    second = w.request_task(approved=False)
    w.asana.ui_update_task(second, BOB, custom_fields={field: [CAROL]})
    approve_as(w, second, CAROL)
    assert "requested this purchase" in w.process(second)
    assert w.backend.count_pos() == 1


def test_the_dry_run_shows_the_control_and_writes_nothing(pr_world):
    from integrations.flows.purchase_requests.orders import process_purchase_request

    w = pr_world
    sod(w)
    mine, theirs = w.request_task(approved=False), w.request_task(approved=False)
    approve_as(w, mine, BOB)
    approve_as(w, theirs, ALICE)

    def dry(gid):
        return process_purchase_request(w.flow, gid, asana=w.asana_client, sage=w.sage_client, dry_run=True)

    assert dry(mine) == (
        "dry run: segregation of duties: the approver requested this purchase; the approval would be "
        "reset and no PO created"
    )
    assert (
        dry(theirs)
        == f"dry run: would create a PO for 00-0000001 (segregation of duties: approver {ALICE} allowed)"
    )
    assert w.asana.tasks[mine]["completed"] is True and w.comments(mine) == []
    assert w.backend.count_pos() == 0 and not AuditEntry.objects.exists()


def test_the_control_is_off_by_default(pr_world):
    w = pr_world
    gid = w.request_task(approved=False)
    approve_as(w, gid, BOB)
    assert w.process(gid) == "PO 0000100 created"


@pytest.mark.parametrize("part", ["tiers", "duplicates", "escalation"])
def test_a_purchase_request_flow_refuses_the_controls_it_does_not_apply(part):
    block = {
        "tiers": {"enabled": True, "tiers": [{"name": "a", "levels": [{"name": "PM", "approvers": ["1"]}]}]},
        "duplicates": {"enabled": True},
        "escalation": {"enabled": True, "recipients": ["ap@example.com"]},
    }
    raw = {part: block[part], "segregation_of_duties": {"enabled": True}}
    [error] = validation_errors(raw, kind=Flow.Kind.ASANA_PURCHASE_REQUESTS)
    assert error.startswith(f"controls.{part}: a purchase-request flow applies segregation of duties only")
    assert validation_errors(raw, kind=Flow.Kind.ACUMATICA_BILLS) == []
