"""The sandbox Asana's clock, lagging search, people's actions and stories (issue 13, money-safety needs)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import pytest
import requests
import responses

from sandbox import asana as asana_sim

D = asana_sim.DEMO
AP, PR = D["ap_project"], D["pr_project"]
ALICE, BOB = D["users"]["alice"], D["users"]["bob"]


class Clock:
    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world():
    clock = Clock()
    sim = asana_sim.build_demo(strict_contract=True, clock=clock)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.mount(rsps)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {D['pat']}"
        yield sim, clock, session


def api(session, method, path, **kwargs):
    resp = session.request(method, f"https://app.asana.com/api/1.0{path}", timeout=5, **kwargs)
    return resp


def create(session, name, project=AP, **data):
    resp = api(session, "POST", "/tasks", json={"data": {"name": name, "projects": [project], **data}})
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]["gid"]


def search(session, **params):
    resp = api(session, "GET", f"/workspaces/{D['workspace']}/tasks/search", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_clock_offset_moves_every_timestamp_and_the_date_header(world):
    sim, clock, session = world
    assert sim.control("set_clock_offset", seconds=3600).startswith("20")
    resp = api(session, "GET", "/users/me")
    assert parsedate_to_datetime(resp.headers["Date"]).timestamp() == pytest.approx(clock.now + 3600, abs=1)
    gid = create(session, "Bill 1")
    task = api(session, "GET", f"/tasks/{gid}").json()["data"]
    created = parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert task["created_at"] == asana_sim.helpers.iso(clock.now + 3600)
    assert abs(created - (clock.now + 3600)) < 1
    # An error answer carries the Date header too.
    assert "Date" in api(session, "GET", "/tasks/1").headers


def test_search_filters_sorts_caps_and_lags_behind_writes(world):
    sim, clock, session = world
    first = create(session, "Invoice ACME 1")
    clock.now += 10
    second = create(session, "Invoice ACME 2", notes="rush")
    clock.now += 10
    found = search(session, text="acme", sort_by="created_at", sort_ascending="true")
    assert [t["gid"] for t in found] == [first, second]
    assert set(found[0]) == {"gid", "resource_type", "name", "resource_subtype"}  # compact
    me = D["connector_user"]
    assert {t["gid"] for t in search(session, **{"created_by.any": me})} == {first, second}
    assert search(session, **{"created_by.any": ALICE}) == []
    after = sim.tasks[first]["created_at"]
    assert [t["gid"] for t in search(session, **{"created_at.after": after})] == [second]
    assert [t["gid"] for t in search(session, text="rush")] == [second]
    assert len(search(session, text="acme", limit="1")) == 1
    got = search(session, text="acme", opt_fields="name,created_by,created_at")
    assert got[0]["created_by"]["gid"] == me and "created_at" in got[0]

    clock.now += 60
    sim.control("set_search_lag", seconds=30)
    third = create(session, "Invoice ACME 3")
    sim.control("person_edit_task", gid=first, user=ALICE, name="Renamed")
    sim.control("person_move_task", gid=second, project=PR)
    assert third not in {t["gid"] for t in search(session, text="acme")}  # not indexed yet
    assert first in {t["gid"] for t in search(session, text="ACME 1")}  # found under its old name
    assert second in {t["gid"] for t in search(session, **{"projects.any": AP})}  # and old project
    # Read-your-write listing stays exact.
    listed = api(session, "GET", "/tasks", params={"project": AP}).json()["data"]
    assert {t["gid"] for t in listed} == {first, third}
    clock.now += 31
    assert {t["gid"] for t in search(session, text="acme")} == {second, third}
    assert [t["gid"] for t in search(session, **{"projects.any": PR})] == [second]


def test_search_is_premium_only_and_refuses_bad_limits(world):
    sim, _clock, session = world
    path = f"/workspaces/{D['workspace']}/tasks/search"
    assert api(session, "GET", path, params={"limit": "101"}).status_code == 400
    sim.control("set_workspace_premium", workspace=D["workspace"], premium=False)
    resp = api(session, "GET", path, params={"text": "x"})
    assert resp.status_code == 402 and resp.json()["errors"][0]["message"]


def test_people_leave_stories_with_asana_time_and_events(world):
    sim, clock, session = world
    gid = create(session, "Approve me", resource_subtype="approval")
    clock.now += 5
    approved = sim.control("person_approve", gid=gid, user=ALICE)
    task = api(
        session, "GET", f"/tasks/{gid}", params={"opt_fields": "approval_status,completed,completed_by"}
    )
    assert task.json()["data"] == {
        "gid": gid,
        "approval_status": "approved",
        "completed": True,
        "completed_by": {"gid": ALICE, "resource_type": "user", "name": "Alice Approver"},
    }
    clock.now += 5
    sim.control("person_request_changes", gid=gid, user=BOB)
    sim.control("person_comment", gid=gid, text="why?", user=BOB)
    sim.control(
        "person_edit_task", gid=gid, user=BOB, custom_fields={D["fields"]["amount"]: 12.5}, name="New"
    )
    fields = "created_at,created_by,resource_subtype,text,new_approval_status,old_approval_status,new_name"
    stories = api(session, "GET", f"/tasks/{gid}/stories", params={"opt_fields": fields, "limit": "2"})
    assert stories.status_code == 200 and stories.json()["next_page"]
    everything = api(session, "GET", f"/tasks/{gid}/stories", params={"opt_fields": fields}).json()["data"]
    subtypes = [s["resource_subtype"] for s in everything]
    assert subtypes == [
        "approved",
        "changes_requested",
        "comment_added",
        "name_changed",
        "number_custom_field_changed",
    ]
    assert everything[0]["created_at"] == approved["at"] == asana_sim.helpers.iso(clock.now - 5)
    assert everything[0]["new_approval_status"] == "approved"
    assert everything[1]["old_approval_status"] == "approved"
    assert everything[1]["created_by"]["gid"] == BOB and everything[3]["new_name"] == "New"


def test_move_delete_and_events_reach_the_projects_watchers(world):
    sim, _clock, session = world
    gid = create(session, "Moving")
    sim.webhooks["w"] = {
        **{k: None for k in ("last_success_at", "last_failure_at", "last_failure_content")},
        "resource": AP,
        "resource_type": "project",
        "workspace": D["workspace"],
        "target": "https://example.test/h",
        "owner": D["connector_user"],
        "filters": [{"resource_type": "task"}],
        "secret": "s",
        "queue": [],
    }
    sim.control("person_move_task", gid=gid, project=PR, section=D["pr_sections"]["approved"])
    task = api(session, "GET", f"/tasks/{gid}", params={"opt_fields": "projects,memberships.section"}).json()
    assert [p["gid"] for p in task["data"]["projects"]] == [PR]
    assert task["data"]["memberships"][0]["section"]["gid"] == D["pr_sections"]["approved"]
    assert [(e["action"], e["parent"]["gid"]) for e in sim.webhooks["w"]["queue"]] == [("removed", AP)]
    stories = api(session, "GET", f"/tasks/{gid}/stories").json()["data"]
    assert [s["resource_subtype"] for s in stories] == ["removed_from_project", "added_to_project"]
    sim.control("person_delete_task", gid=gid)
    assert api(session, "GET", f"/tasks/{gid}").status_code == 404
    other = create(session, "Deleted by the API")
    assert api(session, "DELETE", f"/tasks/{other}").json() == {"data": {}}
    assert api(session, "GET", f"/tasks/{other}").status_code == 404
    assert api(session, "GET", f"/tasks/{other}/stories").status_code == 404
