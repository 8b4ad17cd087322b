"""The sandbox Asana answers every field the spec declares when asked, refuses what Asana refuses, and
serves the routes a wizard or a person needs; unknown routes answer Asana's 404 envelope (issue 13)."""

from __future__ import annotations

import pytest
import requests
import responses

from sandbox import asana as asana_sim

D = asana_sim.DEMO
AP, PR = D["ap_project"], D["pr_project"]
ALICE = D["users"]["alice"]
BASE = "https://app.asana.com/api/1.0"


@pytest.fixture(params=[True])
def world(request):
    sim = asana_sim.build_demo(strict_contract=request.param)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.mount(rsps)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {D['pat']}"
        yield sim, session


def call(session, method, path, **kwargs):
    return session.request(method, f"{BASE}{path}", timeout=5, **kwargs)


def make(session, **data):
    resp = call(session, "POST", "/tasks", json={"data": {"projects": [AP], "name": "T", **data}})
    assert resp.status_code == 201, resp.text
    return resp.json()["data"]


def test_opt_fields_return_what_the_purchase_request_flow_asks_for(world):
    sim, session = world
    parent = make(session, name="PR 1", assignee=ALICE, followers=["bob@demo.example"])
    sub = call(session, "POST", f"/tasks/{parent['gid']}/subtasks", json={"data": {"name": "line 1"}})
    assert sub.status_code == 201, sub.text
    sim.control("person_complete", gid=parent["gid"], user=ALICE)
    fields = "created_by,completed_by.name,num_subtasks,assignee.name,tags,followers,completed_at"
    got = call(session, "GET", f"/tasks/{parent['gid']}", params={"opt_fields": fields}).json()["data"]
    assert got["created_by"] == {
        "gid": D["connector_user"],
        "resource_type": "user",
        "name": "ML Connector Bot",
    }
    assert got["completed_by"] == {"gid": ALICE, "name": "Alice Approver"}
    assert got["num_subtasks"] == 1 and got["assignee"]["name"] == "Alice Approver"
    assert {f["gid"] for f in got["followers"]} == {D["connector_user"], D["users"]["bob"]}
    assert got["tags"] == [] and got["completed_at"]
    sub_gid = sub.json()["data"]["gid"]
    child = call(session, "GET", f"/tasks/{sub_gid}", params={"opt_fields": "parent.name,projects"})
    assert child.json()["data"] == {
        "gid": sub_gid,
        "parent": {"gid": parent["gid"], "name": "PR 1"},
        "projects": [],
    }
    subs = call(session, "GET", f"/tasks/{parent['gid']}/subtasks", params={"opt_fields": "name,modified_at"})
    assert [s["name"] for s in subs.json()["data"]] == ["line 1"]


# The contract check refuses these requests on the client side already; the sandbox must refuse them too.
lenient = pytest.mark.parametrize("world", [False], indirect=True)


@lenient
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"approval_status": "approved"}, "approval_status"),  # not an approval task
        ({"completed_at": "2026-01-01T00:00:00Z"}, "completed_at"),
        ({"created_by": ALICE}, "created_by"),
        ({"resource_subtype": "section"}, "resource_subtype"),
        ({"due_on": "31/12/2026"}, "due_on"),
        ({"due_on": "2026-12-31", "due_at": "2026-12-31T10:00:00Z"}, "due_on"),
        ({"start_on": "2026-12-01"}, "start_on"),
        ({"assignee": "nobody@nowhere.example"}, "assignee"),
    ],
)
def test_writes_asana_refuses_are_refused_and_change_nothing(world, data, field):
    sim, session = world
    task = make(session)
    before = dict(sim.tasks[task["gid"]])
    resp = call(session, "PUT", f"/tasks/{task['gid']}", json={"data": data})
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"][0]["message"].startswith(f"{field}: ")
    assert sim.tasks[task["gid"]] == before
    assert sim.task_stories(task["gid"]) == []


@lenient
def test_an_invalid_approval_status_is_refused_on_an_approval_task(world):
    sim, session = world
    task = make(session, resource_subtype="approval")
    resp = call(session, "PUT", f"/tasks/{task['gid']}", json={"data": {"approval_status": "done"}})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["message"].startswith("approval_status: Invalid value 'done'")
    assert sim.tasks[task["gid"]]["approval_status"] == "pending"
    created = call(session, "POST", "/tasks", json={"data": {"projects": [AP], "approval_status": "ok"}})
    assert created.status_code == 400 and len(sim.tasks) == 1


def test_listing_routes_a_wizard_needs(world):
    sim, session = world
    task = make(session, memberships=[{"project": AP, "section": D["ap_sections"]["approved"]}])
    workspaces = call(session, "GET", "/workspaces").json()["data"]
    assert workspaces == [{"gid": D["workspace"], "resource_type": "workspace", "name": "ML Demo Workspace"}]
    by_query = call(session, "GET", "/projects", params={"workspace": D["workspace"], "limit": "1"}).json()
    assert len(by_query["data"]) == 1 and by_query["next_page"]
    in_ws = call(
        session, "GET", f"/workspaces/{D['workspace']}/projects", params={"opt_fields": "name,archived"}
    )
    assert {p["gid"] for p in in_ws.json()["data"]} == {AP, PR}
    tasks = call(session, "GET", f"/projects/{AP}/tasks").json()["data"]
    assert tasks == [
        {"gid": task["gid"], "resource_type": "task", "name": "T", "resource_subtype": "default_task"}
    ]
    in_section = call(session, "GET", f"/sections/{D['ap_sections']['approved']}/tasks").json()["data"]
    assert [t["gid"] for t in in_section] == [task["gid"]]
    assert call(session, "GET", f"/sections/{D['ap_sections']['inbox']}/tasks").json()["data"] == []
    project = call(session, "GET", f"/projects/{AP}").json()["data"]
    assert project["workspace"]["gid"] == D["workspace"] and project["archived"] is False
    removed = call(session, "POST", f"/tasks/{task['gid']}/removeProject", json={"data": {"project": AP}})
    assert removed.json() == {"data": {}}
    assert call(session, "GET", f"/projects/{AP}/tasks").json()["data"] == []


def test_unknown_routes_and_wrong_methods_answer_asanas_404_envelope():
    sim = asana_sim.build_demo()  # the contract would refuse these requests before the sandbox sees them
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.mount(rsps)
        headers = {"Authorization": f"Bearer {D['pat']}"}
        for method, path in (("GET", "/no/such/thing"), ("PATCH", f"/tasks/{AP}"), ("DELETE", "/workspaces")):
            resp = requests.request(method, f"{BASE}{path}", headers=headers, timeout=5)
            assert resp.status_code == 404, (method, path)
            assert resp.json()["errors"][0]["message"] == "No matching route for request"
            assert "Injected" not in resp.text
