"""The Sage 100 client against a real Simulated agent on loopback: signing, reads, creates, the error
envelope, retries on 423/503 and the unknown outcome of a lost answer. Effects are asserted in the
agent's company (POs counted by external id) and in the ApiCall rows (no secret in them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.models import ApiCall
from integrations.base import errors
from integrations.sage100.client import DuplicateExternalId, Sage100Client, client_for

from .conftest import API_KEY, SECRET, po_payload


def test_ping_is_signed_and_reports_the_company(sage):
    ping = sage.ping()
    assert ping["company"] == "ABC" and ping["backend"] == "simulated" and ping["paused"] is False
    call = ApiCall.objects.get(system="sage100", url__endswith="/v1/ping")
    assert call.status_code == 200


def test_a_wrong_secret_is_refused_as_auth_failure(connection, sleeps):
    connection.signing_secret = "not-the-agent-secret-0000000000"
    client = client_for(connection, sleep=sleeps)
    with pytest.raises(errors.AuthFailed) as caught:
        client.ping()
    assert caught.value.vendor_code == "AUTH_INVALID"


def test_missing_credentials_are_a_configuration_error(connection):
    connection.api_key = ""
    with pytest.raises(errors.ConfigurationError):
        client_for(connection)


def test_vendor_and_gl_reads(sage):
    vendor = sage.get_vendor("0", "1")  # normalised by the agent: 00-0000001
    assert vendor["id"] == "00-0000001" and vendor["active"] is True
    assert sage.get_vendor("00", "99")["active"] is False
    with pytest.raises(errors.NotFound):
        sage.get_vendor("00", "NOPE")
    names = [v["name"] for v in sage.search_vendors("concrete")]
    assert names == ["ABC Concrete Supply"]
    accounts = list(sage.list_gl_accounts(page_size=2))  # paged two at a time, every active account
    assert len(accounts) == 6 and all(a["active"] for a in accounts)
    assert sage.get_gl_account("6900-00-00")["active"] is False


def test_create_is_signed_over_the_exact_body_and_replays_with_the_same_key(sage, agent):
    created = sage.create_purchase_order(po_payload(), "asana-task-1209876543210987-po-v1")
    assert created["po_number"] == "0000100" and created["idempotent_replay"] is False
    again = sage.create_purchase_order(po_payload(), "asana-task-1209876543210987-po-v1")
    assert again["po_number"] == "0000100" and again["idempotent_replay"] is True
    assert agent.backend.count_pos("1209876543210987") == 1
    assert sage.find_po_by_external_id("1209876543210987")["po_number"] == "0000100"
    assert sage.find_po_by_external_id("404404") is None
    assert sage.get_purchase_order("100")["lines"][0]["gl_account"] == "5000-01-00"


def test_dry_run_writes_nothing(sage, agent):
    preview = sage.create_purchase_order(po_payload(), "", dry_run=True)
    assert preview["dry_run"] is True and agent.backend.count_pos() == 0


def test_a_second_key_for_the_same_task_is_refused_with_the_existing_po_number(sage, agent):
    sage.create_purchase_order(po_payload(), "key-a")
    with pytest.raises(DuplicateExternalId) as caught:
        sage.create_purchase_order(po_payload(), "key-b")
    assert caught.value.po_number == "0000100" and not caught.value.retryable
    assert agent.backend.count_pos() == 1


def test_validation_errors_carry_the_field_and_sage_message(sage, agent):
    bad_gl = po_payload(lines=[{**po_payload()["lines"][0], "gl_account": "6900-00-00"}])
    with pytest.raises(errors.Invalid) as caught:
        sage.create_purchase_order(bad_gl, "k-inactive")
    assert caught.value.status == 422 and caught.value.vendor_code == "SAGE_VALIDATION"
    assert "PurchasesAcctKey$" in caught.value.field_errors
    assert "inactive" in str(caught.value)
    zero = po_payload(lines=[{**po_payload()["lines"][0], "quantity": "0"}])
    with pytest.raises(errors.Invalid) as caught:
        sage.create_purchase_order(zero, "k-zero")
    assert caught.value.status == 400
    assert agent.backend.count_pos() == 0


def test_a_short_lock_is_retried_inline_and_creates_once(sage, agent, sleeps):
    agent.backend.inject_lock("po_sequence", calls=2)
    created = sage.create_purchase_order(po_payload(), "k-lock")
    assert created["po_number"] and agent.backend.count_pos() == 1
    assert len(sleeps.waits) == 2  # two 423s, each waited out (Retry-After 1 s)
    statuses = list(
        ApiCall.objects.filter(method="POST").order_by("id").values_list("status_code", flat=True)
    )
    assert statuses == [423, 423, 201]


def test_a_long_lock_leaves_the_worker_with_retry_after(sage, agent, sleeps):
    agent.backend.inject_lock("vendor:00-0000001", seconds=600)
    with pytest.raises(errors.Locked) as caught:
        sage.create_purchase_order(po_payload(), "k-long")
    assert caught.value.retry_after and caught.value.retry_after > 60
    assert not caught.value.outcome_unknown and sleeps.waits == []
    assert agent.backend.count_pos() == 0


def test_paused_agent_is_retryable_and_nothing_is_remembered(sage, agent):
    agent.app.state.drain(1)
    with pytest.raises(errors.Unavailable) as caught:
        sage.create_purchase_order(po_payload(), "k-paused")
    assert caught.value.retry_after == 60 and not caught.value.outcome_unknown
    agent.app.state.resume()
    assert sage.create_purchase_order(po_payload(), "k-paused")["po_number"] == "0000100"


def test_lost_answer_after_write_is_an_unknown_outcome_then_reconciled(sage, agent):
    agent.backend.inject_unknown_outcome(calls=1)
    with pytest.raises(errors.Unavailable) as caught:
        sage.create_purchase_order(po_payload(), "k-lost")
    assert caught.value.outcome_unknown and caught.value.status == 504
    assert agent.backend.count_pos() == 1  # it was written
    assert sage.find_po_by_external_id("1209876543210987")["po_number"] == "0000100"
    replay = sage.create_purchase_order(po_payload(), "k-lost")  # same key: the agent reconciles
    assert replay["po_number"] == "0000100" and replay.get("reconciled") is True
    assert agent.backend.count_pos() == 1


def test_agent_down_is_retryable(connection, agent, sleeps):
    agent.stop()
    client = client_for(connection, sleep=sleeps, max_retries=1)
    with pytest.raises(errors.Unavailable) as caught:
        client.ping()
    assert caught.value.retryable


def test_changed_pos_since_an_instant(sage, agent):
    first = sage.create_purchase_order(po_payload("111"), "k1")["po_number"]
    second = sage.create_purchase_order(po_payload("222"), "k2")["po_number"]
    later = datetime.now(UTC) + timedelta(hours=2)
    agent.backend.touch_po(second, status="O", at=later)
    since = datetime.now(UTC) + timedelta(hours=1)
    changed = list(sage.iter_changed_pos(since, overlap_seconds=0, page_size=1))
    assert [p["po_number"] for p in changed] == [second] and changed[0]["status"] == "O"
    everything = list(sage.iter_changed_pos(datetime.now(UTC) - timedelta(days=1), page_size=1))
    assert [p["po_number"] for p in everything] == [first, second]


def test_no_secret_reaches_the_audit_rows(sage):
    sage.ping()
    sage.create_purchase_order(po_payload(), "k-secret")
    for call in ApiCall.objects.all():
        for text in (call.url, call.request_excerpt, call.response_excerpt, call.error):
            assert API_KEY not in text and SECRET not in text


def test_client_class_contract():
    assert Sage100Client.system == "sage100"
    assert Sage100Client(
        base_url="http://127.0.0.1:1", api_key="k" * 20, signing_secret="s" * 20, recorder=lambda r: None
    ).retry_non_idempotent_on == frozenset({423, 429, 503})
