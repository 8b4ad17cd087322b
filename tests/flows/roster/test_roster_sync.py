"""Employee roster: add active employees, guarded removal, and refusal after a partial read."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from audit.models import AuditEntry, SyncRun
from integrations.flows.roster import sync as roster
from integrations.models import Flow
from mappings.models import UserMapping
from tests.flows.inbound.harness import DEMO, World, world  # noqa: F401

WS = DEMO["workspace"]
TEAM = DEMO["team_finance"]


@pytest.fixture
def flow(world: World):  # noqa: F811
    return Flow.objects.create(
        tenant=world.tenant, name="Employees", kind=Flow.Kind.ACUMATICA_EMPLOYEES, options={"team_gid": TEAM}
    )


def members(w: World) -> set[str]:
    return {
        w.asana.users[u]["email"].lower()
        for (ws, u), m in w.asana.memberships.items()
        if ws == WS and m["is_active"]
    }


NEW = {"maria.lopez@ridgeline.example", "dave.chen@ridgeline.example", "priya.natarajan@ridgeline.example"}


def test_dry_run_is_the_default_and_changes_nothing_in_asana(world: World, flow):  # noqa: F811
    before = members(world)
    result = roster.sync_roster(flow, clients=world.clients)
    assert {p.email for p in result.plan.add} == NEW
    assert ("EP00000005 Site Trailer", "no e-mail in ContactInfo") in result.plan.skipped
    assert members(world) == before
    assert result.run.trigger == SyncRun.Trigger.DRY_RUN and result.run.counts["add"] == 3
    assert AuditEntry.objects.filter(operation="roster.add", status="planned").count() == 3


def test_apply_adds_active_employees_to_workspace_and_team_and_maps_them(world: World, flow):  # noqa: F811
    result = roster.sync_roster(flow, clients=world.clients, apply=True)
    assert members(world) >= NEW
    added = {u for u, x in world.asana.users.items() if x["email"].lower() in NEW}
    assert added <= world.asana.teams[TEAM]["members"]
    maps = {m.email: m for m in UserMapping.objects.filter(tenant=world.tenant)}
    assert set(maps) == NEW and all(m.asana_user_gid in added for m in maps.values())
    assert maps["maria.lopez@ridgeline.example"].acumatica_employee_id == "EP00000001"
    assert result.run.status == "succeeded"
    again = roster.sync_roster(flow, clients=world.clients, apply=True)  # idempotent
    assert again.plan.add == [] and len(again.plan.keep) == 3


def test_removal_is_off_by_default_then_guarded(world: World, flow):  # noqa: F811
    w = world
    tom = w.asana.add_user("Tom Becker", "tom.becker@ridgeline.example", workspace=WS)
    w.acumatica.add_employee("EP00000009", "Bot Account", "connector@demo.example", status="Inactive")
    w.acumatica.add_employee("EP00000010", "Alice Approver", "alice@demo.example", status="Inactive")
    plan = roster.sync_roster(flow, clients=w.clients, apply=True).plan
    assert plan.remove == []
    assert ("tom.becker@ridgeline.example", "inactive in Acumatica; removal is turned off") in plan.skipped
    assert ("connector@demo.example", "the connector's own user is never removed") in plan.skipped

    flow.options = {
        **flow.options,
        "removal_enabled": True,
        "max_removals_per_run": 1,
        "protected_emails": ["Alice@demo.example"],
    }
    flow.save()
    plan = roster.sync_roster(flow, clients=w.clients, apply=True).plan
    assert [p.email for p in plan.remove] == ["tom.becker@ridgeline.example"]
    assert (WS, tom) not in w.asana.memberships
    assert "alice@demo.example" in members(w)  # protected
    assert "connector@demo.example" in members(w)
    assert AuditEntry.objects.filter(operation="roster.remove", status="succeeded").count() == 1


def test_more_removals_than_the_maximum_removes_nobody(world: World, flow):  # noqa: F811
    w = world
    for n in range(3):
        email = f"leaver{n}@ridgeline.example"
        w.asana.add_user(f"Leaver {n}", email, workspace=WS)
        w.acumatica.add_employee(f"EP0000010{n}", f"Leaver {n}", email, status="Inactive")
    flow.options = {"removal_enabled": True, "max_removals_per_run": 2}
    flow.save()
    result = roster.sync_roster(flow, clients=w.clients, apply=True)
    assert result.plan.remove == [] and "exceed the maximum of 2" in result.plan.removal_refused
    assert {f"leaver{n}@ridgeline.example" for n in range(3)} <= members(w)


@pytest.mark.parametrize("side", ["acumatica", "asana"])
def test_partial_or_failed_read_refuses_every_change(world: World, flow, side):  # noqa: F811
    w = world
    w.asana.add_user("Tom Becker", "tom.becker@ridgeline.example", workspace=WS)
    flow.options = {"removal_enabled": True, "max_removals_per_run": 5}
    flow.save()
    for n in range(120):  # more than one page of employees
        w.acumatica.add_employee(f"EP1{n:07d}", f"Temp {n}", f"temp{n}@ridgeline.example", status="Inactive")
    if side == "acumatica":  # the first page arrives, the second fails
        w.clients.acumatica.iter_employees = _second_page_fails(w.clients.acumatica.iter_employees)
    else:
        w.asana.faults.add("status", method="GET", path="^/users$", status=500, times=50)
    before = members(w)
    result = roster.sync_roster(flow, clients=w.clients, apply=True)
    assert result.plan is None and result.run.status == "failed"
    assert "nothing changed" in result.run.message
    assert members(w) == before
    assert not AuditEntry.objects.filter(operation__startswith="roster.").exists()
    assert not UserMapping.objects.exists()


def _second_page_fails(real):
    def iter_employees(**kwargs):
        for n, record in enumerate(real(**kwargs)):
            yield record
            if n == 99:
                from integrations.base import errors

                raise errors.Unavailable("page 2 failed", system="acumatica")

    return iter_employees


def test_connector_roster_command_prints_the_diff(world: World, flow):  # noqa: F811
    out = StringIO()
    call_command("connector", "roster", "--tenant", "ridgeline", stdout=out)
    text = out.getvalue()
    assert "DRY RUN" in text and "+ add    maria.lopez@ridgeline.example" in text
    assert "maria.lopez@ridgeline.example" not in members(world)
