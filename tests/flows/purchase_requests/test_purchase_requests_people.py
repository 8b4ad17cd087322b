# ruff: noqa: F811  (pytest fixtures imported from tests.sage100.flow_harness)
"""Requester and approver of a purchase request → the PO's requisitioner and confirm-to, through the
Asana roster read into UserMapping (sandbox Asana in strict-contract mode + a real Simulated agent).

The sandbox keeps no `completed_by` (the task field the approver comes from); `completed_by_shim` adds
it, from the user whose edit completed the task, to the rendered task. `completed_by` is in the Asana
spec (TaskBase), so the strict contract still checks every response."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from audit.models import AuditEntry
from integrations.base import errors
from integrations.models import Cursor, Flow, RecordLink
from mappings.models import UserMapping
from mappings.users import STREAM, ensure_asana_users, sync_asana_users, task_people
from sandbox.asana import DEMO
from tests.sage100.flow_harness import pr_world  # noqa: F401

U = DEMO["users"]


@pytest.fixture
def world(pr_world):
    """pr_world plus completed_by on rendered tasks and a 'Requested by' people field on the project."""
    sim = pr_world.asana
    completed_by: dict[str, str] = {}
    apply, render = sim._apply, sim.render_task

    def _apply(task, data, user, gid, emit=True):
        was = task["completed"]
        changed = apply(task, data, user, gid, emit)
        if task["completed"] and not was and user:
            completed_by[gid] = user
        elif not task["completed"]:
            completed_by.pop(gid, None)
        return changed

    def render_task(gid):
        out = render(gid)
        if sim.tasks[gid]["completed"] and gid in completed_by:
            out["completed_by"] = sim._compact("user", completed_by[gid])
        return out

    sim._apply, sim.render_task = _apply, render_task
    pr_world.requested_by = sim.add_custom_field("Requested by", "people", projects=(DEMO["pr_project"],))
    return pr_world


def sage_users(**by_email):
    for email, sage_user in by_email.items():
        UserMapping.objects.filter(email=f"{email}@demo.example").update(sage_user=sage_user)


def stored_po(w, gid):
    po = w.backend.find_by_external_id(gid)
    assert po is not None
    return po


def use_requested_by_field(w):
    w.flow.options = {**(w.flow.options or {}), "requester_field_gid": w.requested_by}
    w.flow.save(update_fields=["options"])


def test_roster_sync_creates_and_updates_user_mappings_by_email(world):
    w = world
    UserMapping.objects.create(
        tenant=w.tenant, email="Bob@Demo.example", display_name="old", sage_user="BOB", active=False
    )
    result = sync_asana_users(w.tenant, w.asana_client)
    bob = UserMapping.objects.get(tenant=w.tenant, email="bob@demo.example")
    assert (bob.asana_user_gid, bob.display_name, bob.active, bob.sage_user) == (
        U["bob"],
        "Bob Buyer",
        True,
        "BOB",  # set by hand; the roster never touches it
    )
    assert result.updated == ["bob@demo.example"]
    assert {"alice@demo.example", "carol@demo.example", "gina@partner.example"} <= set(result.created)
    gina = UserMapping.objects.get(email="gina@partner.example")
    assert gina.asana_user_gid == U["gina_guest"] and gina.active  # guests can file requests too
    again = sync_asana_users(w.tenant, w.asana_client)
    assert not again.created and not again.updated and again.unchanged == len(result.created) + 1
    assert Cursor.objects.filter(tenant=w.tenant, stream=STREAM).exists()


def test_deactivated_member_becomes_inactive(world):
    w = world
    sync_asana_users(w.tenant, w.asana_client)
    w.asana.memberships[(DEMO["workspace"], U["carol"])]["is_active"] = False
    sync_asana_users(w.tenant, w.asana_client)
    assert not UserMapping.objects.get(email="carol@demo.example").active


def test_requester_and_approver_become_requisitioner_and_confirm_to(world):
    w = world
    use_requested_by_field(w)
    sync_asana_users(w.tenant, w.asana_client)
    sage_users(bob="BBUYER", alice="AAPPROVER")
    gid = w.request_task(approved=False)
    w.asana.ui_update_task(gid, U["bob"], custom_fields={w.requested_by: [U["bob"]]})
    w.approve(gid)  # Alice completes the task
    assert w.process(gid) == "PO 0000100 created"
    po = stored_po(w, gid)
    assert (po.requisitioner, po.confirm_to) == ("BBUYER", "AAPPROVER")
    got = w.sage_client.get_purchase_order(po.po_number)
    assert (got["requisitioner"], got["confirm_to"]) == ("BBUYER", "AAPPROVER")
    [comment] = w.comments(gid)
    assert "has no Sage user" not in comment
    assert not AuditEntry.objects.filter(operation="purchase_request.people").exists()


def test_people_are_mapped_without_a_manual_roster_sync(world):
    """The flow reads the roster itself when it meets an Asana user it has no mapping for."""
    w = world
    use_requested_by_field(w)
    for email, sage_user in (("bob@demo.example", "BBUYER"), ("alice@demo.example", "AAPPROVER")):
        UserMapping.objects.create(tenant=w.tenant, email=email, sage_user=sage_user)  # no Asana GID yet
    gid = w.request_task(approved=False)
    w.asana.ui_update_task(gid, U["bob"], custom_fields={w.requested_by: [U["bob"]]})
    w.approve(gid)
    w.process(gid)
    po = stored_po(w, gid)
    assert (po.requisitioner, po.confirm_to) == ("BBUYER", "AAPPROVER")
    assert UserMapping.objects.get(email="bob@demo.example").asana_user_gid == U["bob"]


def test_unmapped_requester_is_noted_not_refused(world):
    w = world
    use_requested_by_field(w)
    sync_asana_users(w.tenant, w.asana_client)
    sage_users(alice="AAPPROVER")  # Bob has no Sage user
    gid = w.request_task(approved=False)
    w.asana.ui_update_task(gid, U["bob"], custom_fields={w.requested_by: [U["bob"]]})
    w.approve(gid)
    assert w.process(gid) == "PO 0000100 created"
    po = stored_po(w, gid)
    assert (po.requisitioner, po.confirm_to) == ("", "AAPPROVER")
    [comment] = w.comments(gid)
    note = "requester Bob Buyer (bob@demo.example) has no Sage user in the user mappings"
    assert "0000100" in comment and note in comment
    entry = AuditEntry.objects.get(operation="purchase_request.people")
    assert note in entry.error and entry.record_key == gid and entry.record_link_id is not None
    assert AuditEntry.objects.get(operation="purchase_order.create").status == "succeeded"
    # The frozen payload carries no requisitioner: a replay sends exactly the same request.
    assert "requisitioner" not in RecordLink.objects.get(asana_task_gid=gid).approved_snapshot["payload"]


def test_approval_task_approver_is_the_confirm_to(world):
    w = world
    Flow.objects.filter(pk=w.flow.pk).update(approval_rule=Flow.ApprovalRule.APPROVAL_STATUS)
    w.flow.refresh_from_db()
    use_requested_by_field(w)
    sync_asana_users(w.tenant, w.asana_client)
    sage_users(bob="BBUYER", carol="CCONTROL")
    gid = w.asana.add_task(
        DEMO["pr_project"],
        "Formwork rental",
        approval=True,
        user=U["bob"],
        custom_fields={
            DEMO["fields"]["vendor"]: "ABC Concrete",
            DEMO["fields"]["amount"]: 900.0,
            DEMO["fields"]["cost_code"]: DEMO["options"]["cost_code"]["5000 Materials"],
            w.requested_by: [U["bob"]],
        },
    )
    assert w.process(gid).startswith("not approved")
    w.asana.set_approval_status(gid, "approved", user=U["carol"])
    assert w.process(gid) == "PO 0000100 created"
    po = stored_po(w, gid)
    assert (po.requisitioner, po.confirm_to) == ("BBUYER", "CCONTROL")


def test_requester_udf_option_still_gets_the_requester(world):
    w = world
    use_requested_by_field(w)
    w.flow.options = {**w.flow.options, "requester_udf": "UDF_REQUESTED_BY"}
    w.flow.save(update_fields=["options"])
    sync_asana_users(w.tenant, w.asana_client)
    sage_users(bob="BBUYER")
    gid = w.request_task(approved=False)
    w.asana.ui_update_task(gid, U["bob"], custom_fields={w.requested_by: [U["bob"]]})
    w.approve(gid)
    w.process(gid)
    po = stored_po(w, gid)
    assert po.requisitioner == "BBUYER" and po.udf["UDF_REQUESTED_BY"] == "BBUYER"
    assert po.confirm_to == ""  # Alice has no Sage user: noted, not refused


def test_cli_sync_users_runs_on_its_own(world):
    w = world
    out = io.StringIO()
    call_command("connector", "purchase-requests", "--tenant", w.tenant.slug, "--sync-users", stdout=out)
    assert "User mappings:" in out.getvalue() and "created" in out.getvalue()
    assert UserMapping.objects.get(email="alice@demo.example").asana_user_gid == U["alice"]
    assert w.backend.count_pos() == 0  # only the roster, no purchase-request pass


# --- the pure part of people mapping (plain task dicts) -----------------------------------------------


class FailingRoster:
    def roster(self):
        raise errors.Unavailable("Asana is down")


def test_created_by_is_the_default_requester_and_a_failed_roster_read_is_noted(db):
    from integrations.models import Tenant

    tenant = Tenant.objects.create(slug="t", name="T")
    UserMapping.objects.create(tenant=tenant, email="bob@x.example", asana_user_gid="11", sage_user="BOB")
    task = {"created_by": {"gid": "11"}, "completed_by": {"gid": "22", "name": "Zed"}}
    people = task_people(tenant, task, asana=FailingRoster())
    assert people.requester.sage_user == "BOB" and people.approver.sage_user == ""
    assert any("could not be read" in n for n in people.notes)
    assert "approver Zed has no Sage user in the user mappings" in people.notes


def test_roster_is_not_reread_for_known_people_or_too_often(db):
    from integrations.models import Tenant

    tenant = Tenant.objects.create(slug="t", name="T")
    UserMapping.objects.create(tenant=tenant, email="bob@x.example", asana_user_gid="11")

    class Counting:
        calls = 0

        def roster(self):
            Counting.calls += 1
            return [{"gid": "11", "email": "bob@x.example", "member": True, "is_active": True}]

    assert ensure_asana_users(tenant, Counting(), ["11"]) is None and Counting.calls == 0
    assert ensure_asana_users(tenant, Counting(), ["11", "99"]) is not None and Counting.calls == 1
    assert ensure_asana_users(tenant, Counting(), ["99"]) is None and Counting.calls == 1  # read recently
