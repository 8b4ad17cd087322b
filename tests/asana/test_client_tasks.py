"""The Asana client's task calls against the strict-contract sandbox: envelope, paging, opt_fields,
one-call creates, minimal updates, approval semantics."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from integrations.asana import fields as cf
from integrations.asana.shapes import TASK_FIELDS, approval_outcome, is_approved, task_changes
from integrations.base import errors
from sandbox.asana import DEMO

from .conftest import api_requests, needs_memberships_gap

F, O = DEMO["fields"], DEMO["options"]  # noqa: E741
AP, INBOX = DEMO["ap_project"], DEMO["ap_sections"]["inbox"]


def test_envelope_both_ways(client, mounted):
    task = client.create_task(name="Bill 000123 – ACME", project_gid=AP, notes="from Acumatica")
    (req,) = api_requests(mounted, "POST", "/tasks")
    sent = json.loads(req.body)
    assert set(sent) == {"data"} and sent["data"]["name"] == "Bill 000123 – ACME"
    # The envelope is unwrapped for callers.
    assert task["gid"] in mounted.tasks and task["name"] == "Bill 000123 – ACME"
    assert "data" not in task


@needs_memberships_gap
def test_create_with_project_section_and_custom_fields_in_one_call(client, mounted):
    specs = client.project_custom_fields(AP)
    values = cf.encode_custom_fields(
        specs,
        {
            F["amount"]: Decimal("1234.565"),
            F["vendor"]: "ACME Corp",
            F["erp_reference"]: "Bill/000123",
            F["due_date"]: "2026-07-31",
            F["approval_status"]: O["approval_status"]["Pending"],
        },
    )
    before = len(api_requests(mounted, "POST"))
    task = client.create_task(name="Bill 000123", project_gid=AP, section_gid=INBOX, custom_fields=values)
    posts = api_requests(mounted, "POST")[before:]
    assert [p.path for p in posts] == ["/tasks"]  # exactly one write
    state = mounted.tasks[task["gid"]]
    assert state["projects"] == [AP] and state["sections"] == {AP: INBOX}
    assert mounted.task_values(task["gid"]) == {
        F["amount"]: 1234.57,
        F["vendor"]: "ACME Corp",
        F["erp_reference"]: "Bill/000123",
        F["due_date"]: "2026-07-31",
        F["approval_status"]: O["approval_status"]["Pending"],
    }
    decoded = cf.decode_custom_fields(task)
    assert decoded[F["amount"]] == Decimal("1234.57")
    assert decoded[F["approval_status"]] == O["approval_status"]["Pending"]
    assert task["memberships"][0]["section"]["gid"] == INBOX


def test_one_call_create_state_with_contract_relaxed(client, mounted):
    """The sandbox side of the one-call create, checked even while the memberships gap is pending."""
    mounted.strict_contract = False
    values = {F["amount"]: 99.99, F["approval_status"]: O["approval_status"]["Pending"]}
    task = client.create_task(name="Bill 9", project_gid=AP, section_gid=INBOX, custom_fields=values)
    assert [r.path for r in api_requests(mounted, "POST")] == ["/tasks"]
    assert mounted.tasks[task["gid"]]["sections"] == {AP: INBOX}
    assert mounted.task_values(task["gid"]) == values


def test_memberships_refused_falls_back_to_add_task(client, mounted):
    """reference §4.1 marks section placement on create UNVERIFIED: a 400 about it is handled."""
    mounted.faults.add(
        "status",
        method="POST",
        path="^/tasks$",
        status=400,
        body={"errors": [{"message": "memberships: Cannot write this property", "phrase": "x"}]},
    )
    values = {F["amount"]: 12.5}
    task = client.create_task(name="Bill 10", project_gid=AP, section_gid=INBOX, custom_fields=values)
    posts = [r.path for r in api_requests(mounted, "POST")]
    assert posts == ["/tasks", "/tasks", f"/sections/{INBOX}/addTask"]
    assert len([t for t in mounted.tasks.values() if t["name"] == "Bill 10"]) == 1
    assert mounted.tasks[task["gid"]]["sections"] == {AP: INBOX}
    assert mounted.task_values(task["gid"]) == values


def test_other_invalid_create_is_not_retried(client, mounted):
    mounted.faults.add(
        "status",
        method="POST",
        path="^/tasks$",
        status=400,
        body={"errors": [{"message": "name: too long", "phrase": "x"}]},
    )
    with pytest.raises(errors.Invalid):
        client.create_task(name="Bill 11", project_gid=AP, section_gid=INBOX)
    assert [r.path for r in api_requests(mounted, "POST")] == ["/tasks"]


def test_opt_fields_sent_on_every_call(client, mounted):
    task = client.create_task(name="x", project_gid=AP)
    client.get_task(task["gid"])
    client.update_task(task["gid"], {"name": "y"})
    list(client.iter_project_tasks(AP))
    client.custom_field_settings(AP)
    client.me()
    client.add_comment(task["gid"], "hello")
    for req in mounted.requests:
        assert req.arg("opt_fields"), f"{req.method} {req.path} sent without opt_fields"
    get = api_requests(mounted, "GET", f"/tasks/{task['gid']}")[0]
    assert get.arg("opt_fields").split(",") == list(TASK_FIELDS)


def test_paging_over_250_tasks_is_a_generator_following_offsets(client, mounted):
    for i in range(260):
        mounted.add_task(AP, f"Task {i}")
    pages = client.iter_project_tasks(AP)
    first = next(pages)
    assert len(api_requests(mounted, "GET", "/tasks")) == 1  # lazily: one page fetched so far
    rest = list(pages)
    names = [first["name"], *(t["name"] for t in rest)]
    assert names == [f"Task {i}" for i in range(260)]
    gets = api_requests(mounted, "GET", "/tasks")
    assert len(gets) == 3
    assert all(g.arg("limit") == "100" for g in gets)
    assert gets[0].arg("offset") is None and gets[1].arg("offset") and gets[2].arg("offset")


def test_offset_expired_restarts_once_without_repeating_items(client, mounted):
    for i in range(150):
        mounted.add_task(AP, f"Task {i}")
    pages = client.iter_project_tasks(AP)
    first_page = [next(pages) for _ in range(100)]
    mounted.expire_offsets()
    rest = list(pages)
    assert len(first_page) + len(rest) == 150
    assert len({t["gid"] for t in first_page + rest}) == 150


def test_truncated_result_set_raises_a_typed_error(client, mounted):
    mounted.truncate_results_after = 100
    for i in range(150):
        mounted.add_task(AP, f"Task {i}")
    from integrations.asana.shapes import ResultTruncated

    with pytest.raises(ResultTruncated, match="split the query"):
        list(client.iter_project_tasks(AP))


def test_modified_since_filters(client, mounted, clock):
    old = mounted.add_task(AP, "old")
    clock.advance(3600)
    cutoff = mounted.now_iso()
    clock.advance(10)
    new = mounted.add_task(AP, "new")
    mounted.ui_update_task(old, None, name="old")  # unchanged: modified_at stays
    got = [t["gid"] for t in client.iter_project_tasks(AP, modified_since=cutoff)]
    assert got == [new]
    assert api_requests(mounted, "GET", "/tasks")[-1].arg("modified_since") == cutoff


def test_update_sends_only_changed_fields(client, mounted):
    specs = client.project_custom_fields(AP)
    first = {
        "name": "Bill 1",
        "notes": "n",
        "custom_fields": cf.encode_custom_fields(
            specs, {F["amount"]: 10, F["vendor"]: "ACME", F["cost_code"]: O["cost_code"]["5000 Materials"]}
        ),
    }
    task = client.create_task(
        name=first["name"], project_gid=AP, notes="n", custom_fields=first["custom_fields"]
    )
    desired = {
        "name": "Bill 1",
        "notes": "n",
        "custom_fields": cf.encode_custom_fields(
            specs, {F["amount"]: 12.5, F["vendor"]: "ACME", F["cost_code"]: O["cost_code"]["5000 Materials"]}
        ),
    }
    client.update_task(task["gid"], desired=desired, last_known=task)
    (put,) = api_requests(mounted, "PUT")
    assert json.loads(put.body) == {"data": {"custom_fields": {F["amount"]: 12.5}}}
    assert mounted.task_values(task["gid"])[F["amount"]] == 12.5
    # Against the last payload we wrote, nothing changed: no call at all.
    assert client.update_task(task["gid"], desired=desired, last_known=desired) is None
    assert len(api_requests(mounted, "PUT")) == 1


def test_task_changes_normalises_read_shapes():
    read = {
        "name": "a",
        "assignee": {"gid": "1", "name": "x"},
        "custom_fields": [
            {"gid": "5", "resource_subtype": "date", "date_value": {"date": "2026-01-02", "date_time": None}},
            {"gid": "6", "resource_subtype": "multi_enum", "multi_enum_values": [{"gid": "7"}]},
        ],
    }
    desired = {"name": "a", "assignee": "1", "custom_fields": {"5": {"date": "2026-01-02"}, "6": ["7", "8"]}}
    assert task_changes(desired, read) == {"custom_fields": {"6": ["7", "8"]}}


def test_complete_uncomplete_move_and_comment(client, mounted, clock):
    task = client.create_task(name="t", project_gid=AP)
    gid = task["gid"]
    before = mounted.tasks[gid]["modified_at"]
    clock.advance(5)
    assert client.complete_task(gid)["completed"] is True
    assert mounted.tasks[gid]["completed"] and mounted.tasks[gid]["modified_at"] > before
    assert client.uncomplete_task(gid)["completed"] is False
    client.move_to_section(gid, DEMO["ap_sections"]["approved"])
    assert mounted.tasks[gid]["sections"] == {AP: DEMO["ap_sections"]["approved"]}
    story = client.add_comment(gid, "Released in Acumatica")
    assert mounted.stories[story["gid"]]["text"] == "Released in Acumatica"


def test_approval_status_semantics(client, mounted):
    task = client.create_task(name="Approve bill", project_gid=AP, approval=True)
    gid = task["gid"]
    assert approval_outcome(task) == "pending" and not is_approved(task)
    mounted.set_approval_status(gid, "rejected")
    rejected = client.get_task(gid)
    assert rejected["completed"] is True  # completed, yet NOT approved (reference §4.4)
    assert approval_outcome(rejected) == "rejected" and not is_approved(rejected)
    mounted.set_approval_status(gid, "changes_requested")
    assert not is_approved(client.get_task(gid))
    mounted.set_approval_status(gid, "approved")
    assert is_approved(client.get_task(gid))
    plain = client.create_task(name="plain", project_gid=AP)
    client.complete_task(plain["gid"])
    assert approval_outcome(client.get_task(plain["gid"])) is None


def test_sandbox_refuses_what_asana_refuses(client, mounted):
    # The sandbox accepts only the settled date shape (docs/vendor-facts.md), so nothing relies on the other.
    with pytest.raises(errors.Invalid, match="date"):
        client.create_task(name="x", project_gid=AP, custom_fields={F["due_date"]: "2026-01-01"})
    disabled = O["cost_code"]["9999 Retired"]
    with pytest.raises(errors.Invalid, match="disabled"):
        client.create_task(name="x", project_gid=AP, custom_fields={F["cost_code"]: disabled})
    assert not mounted.tasks  # nothing half-created


def test_disabled_value_after_field_leaves_project(client, mounted):
    specs = client.project_custom_fields(AP)
    task = client.create_task(
        name="x", project_gid=AP, custom_fields=cf.encode_custom_fields(specs, {F["vendor"]: "ACME"})
    )
    mounted.remove_field_from_project(AP, F["vendor"])
    entry = next(e for e in client.get_task(task["gid"])["custom_fields"] if e["gid"] == F["vendor"])
    assert entry["enabled"] is False and entry["text_value"] == "ACME"
    with pytest.raises(errors.Invalid, match="only be cleared"):
        client.update_task(task["gid"], {"custom_fields": {F["vendor"]: "Other"}})
    client.update_task(task["gid"], {"custom_fields": {F["vendor"]: None}})
    assert mounted.task_values(task["gid"])[F["vendor"]] is None
