"""Users, workspace/team membership, and the shared per-token rate budget under bulk writes."""

from __future__ import annotations

import uuid

import pytest

from integrations.asana.client import client_for
from integrations.base import errors
from integrations.base.ratelimit import budget_for
from integrations.models import AsanaConnection
from sandbox.asana import DEMO

from .conftest import api_requests

WS = DEMO["workspace"]
U = DEMO["users"]


def test_me_and_workspace(client, mounted):
    me = client.me()
    assert me["gid"] == DEMO["connector_user"] and me["name"] == "ML Connector Bot"
    assert {w["gid"] for w in me["workspaces"]} == {WS}
    assert client.get_workspace(WS)["name"] == "ML Demo Workspace"


def test_roster_joins_users_and_membership_flags(client, mounted):
    roster = {r["email"]: r for r in client.roster()}
    assert roster["gina@partner.example"]["is_guest"] is True
    assert roster["alice@demo.example"]["is_admin"] is True
    assert roster["bob@demo.example"] == {
        "gid": U["bob"],
        "name": "Bob Buyer",
        "email": "bob@demo.example",
        "member": True,
        "is_active": True,
        "is_admin": False,
        "is_guest": False,
    }
    users_call = api_requests(mounted, "GET", "/users")[0]
    assert users_call.arg("workspace") == WS and users_call.arg("limit") == "100"


def test_add_and_remove_workspace_user(client, mounted):
    added = client.add_user_to_workspace("dora.new@demo.example")
    assert added["email"] == "dora.new@demo.example"
    assert mounted.memberships[(WS, added["gid"])]["is_active"] is True
    guest = client.add_user_to_workspace("ext@elsewhere.example")
    assert mounted.memberships[(WS, guest["gid"])]["is_guest"] is True
    client.remove_user_from_workspace(added["gid"])
    assert (WS, added["gid"]) not in mounted.memberships
    assert added["gid"] not in {r["gid"] for r in client.roster()}


def test_remove_user_needs_an_admin(connection, mounted, clock):
    token = mounted.add_pat(U["bob"])
    AsanaConnection.objects.filter(pk=connection.pk).update(personal_access_token=token)
    connection.refresh_from_db()
    bob = client_for(connection, rate_limiter=None, sleep=clock.sleep)
    with pytest.raises(errors.Forbidden, match="admin"):
        bob.remove_user_from_workspace(U["carol"])
    assert (WS, U["carol"]) in mounted.memberships


def test_team_add_and_remove(client, mounted):
    team = DEMO["team_finance"]
    membership = client.add_user_to_team(team, U["bob"])
    assert membership["user"]["gid"] == U["bob"] and U["bob"] in mounted.teams[team]["members"]
    client.remove_user_from_team(team, U["bob"])
    assert U["bob"] not in mounted.teams[team]["members"]


def test_500_task_writes_stay_within_the_budget_and_never_see_a_429(connection, mounted, clock, monkeypatch):
    """60/min in the sandbox and the same 60/min in the connection: the shared budget paces the bulk
    write (sleeping on the fake clock), so the sandbox's limiter never has to answer 429."""
    mounted.requests_per_minute = 60
    mounted.max_writes_in_flight = 2
    AsanaConnection.objects.filter(pk=connection.pk).update(requests_per_minute=60, max_writes_in_flight=2)
    connection.refresh_from_db()
    limiter = budget_for(f"asana:test-{uuid.uuid4().hex}", per_minute=60, max_in_flight_writes=2, clock=clock)
    client = client_for(connection, rate_limiter=limiter, sleep=clock.sleep)
    import tracemalloc

    import responses

    # The mock's call log keeps every request body: harness memory, not the client's.
    monkeypatch.setattr(responses.CallList, "add", lambda self, *args: None)
    monkeypatch.setattr(responses.CallList, "add_call", lambda self, *args: None)

    client_code = [
        tracemalloc.Filter(True, "*/integrations/asana/*"),
        tracemalloc.Filter(True, "*/integrations/base/*"),
    ]

    def retained_by_client_after(start, count):
        tracemalloc.start()
        try:
            for i in range(start, start + count):
                client.create_task(name=f"Bill {i:04d}", project_gid=DEMO["ap_project"])
            mounted.requests.clear()  # the sandbox's request log holds each body: harness memory
            snapshot = tracemalloc.take_snapshot().filter_traces(client_code)
            return sum(stat.size for stat in snapshot.statistics("filename"))
        finally:
            tracemalloc.stop()

    after_50 = retained_by_client_after(0, 50)
    after_450 = retained_by_client_after(50, 450)
    assert len(mounted.tasks) == 500
    # Bounded memory: what the client's own code still holds does not grow with the number of writes
    # (the sandbox's state, which does grow, is not the client's).
    assert after_450 < after_50 * 2 + 64 * 1024, (after_50, after_450)
    assert mounted.rate_limited == []
    assert all(status != 429 for _m, _p, status in mounted.request_log)
    # The sandbox limiter is real: without the budget the same burst is refused.
    raw = client_for(connection, rate_limiter=None, sleep=clock.sleep, max_retries=0)
    clock.advance(120)
    with pytest.raises(errors.RateLimited):
        for i in range(61):
            raw.create_task(name=f"Burst {i}", project_gid=DEMO["ap_project"])
    assert mounted.rate_limited


def test_client_for_uses_the_shared_budget(connection):
    client = client_for(connection, recorder=lambda r: None)
    assert client.rate_limiter is not None
    assert client.rate_limiter.per_minute == connection.requests_per_minute
    assert client.rate_limiter.max_in_flight_writes == connection.max_writes_in_flight
    assert DEMO["pat"] not in client.rate_limiter.key
