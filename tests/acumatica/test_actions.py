"""ReleaseBill / Approve: 202 polling, deadlines, refusals, idempotence."""

from __future__ import annotations

import pytest

from integrations.base import errors


def status_polls(sim) -> list[int]:
    return [s for m, p, s in sim.request_log if "/status/" in p]


def test_release_polls_202_until_204_then_rereads_open(client, mounted, clock):
    mounted.release_polls = 3
    bill = client.release_bill("Bill", "000001")
    assert bill["Status"] == "Open"
    assert mounted.record("Bill", "Bill", "000001")["Status"] == "Open"
    assert status_polls(mounted) == [202, 202, 202, 204]
    assert clock.sleeps == [1.0] * 4  # one poll interval before each status request
    log = [(m, p.rsplit("/", 3)[-3:]) for m, p, _s in mounted.request_log]
    assert log[-1][0] == "GET" and log[-1][1][-1] == "000001"  # re-read after completion


def test_release_of_an_open_bill_is_done_without_an_action(client, mounted):
    client.release_bill("Bill", "000001")
    before = len(mounted.request_log)
    assert client.release_bill("Bill", "000001")["Status"] == "Open"
    assert not any(p.endswith("/ReleaseBill") for _m, p, _s in mounted.request_log[before:])


def test_release_that_never_finishes_times_out_with_unknown_outcome(client, mounted, clock):
    mounted.release_polls = None  # only the sandbox's clock decides, and it runs an hour-long release
    mounted.operation_seconds = 3600
    client.action_deadline = 20
    with pytest.raises(errors.Timeout) as info:
        client.release_bill("Bill", "000004")
    assert info.value.outcome_unknown and info.value.retryable
    assert 19 <= len(status_polls(mounted)) <= 21
    # the session is still busy with the operation: Acumatica refuses other requests on it
    with pytest.raises(errors.Locked, match="long operation"):
        client.get_bill("Bill", "000004")


def test_release_from_on_hold_is_refused_and_nothing_changes(client, mounted):
    with pytest.raises(errors.Invalid) as info:
        client.release_bill("Bill", "000002")
    assert "On Hold" in info.value.message and info.value.status == 500
    assert not info.value.outcome_unknown  # the application refused: no reconciliation needed
    assert mounted.record("Bill", "Bill", "000002")["Status"] == "On Hold"
    assert [s for m, p, s in mounted.request_log if p.endswith("/ReleaseBill")] == [500]  # never retried


def test_hold_then_release(client, mounted):
    assert client.set_bill_hold("Bill", "000002", False)["Status"] == "Balanced"
    assert client.release_bill("Bill", "000002")["Status"] == "Open"


def test_approve_then_release(client, mounted):
    with pytest.raises(errors.Invalid):
        client.release_bill("Bill", "000003")  # Pending Approval
    assert client.approve_bill("Bill", "000003")["Status"] == "Balanced"
    assert client.release_bill("Bill", "000003")["Status"] == "Open"


def test_release_of_a_missing_bill_is_not_found(client):
    with pytest.raises(errors.NotFound):
        client.invoke_action("Bill", "ReleaseBill", {"Type": "Bill", "ReferenceNbr": "123456"})


def test_release_timeout_on_the_post_is_outcome_unknown(client, mounted):
    client.auth.ensure()
    mounted.faults.add("drop_after_write", path=r"/ReleaseBill$")
    with pytest.raises(errors.Unavailable) as info:
        client.invoke_action("Bill", "ReleaseBill", {"Type": "Bill", "ReferenceNbr": "000001"})
    assert info.value.outcome_unknown
    assert [s for m, p, s in mounted.request_log if p.endswith("/ReleaseBill")] == [202]  # sent once
