"""Idempotency ledger: replay, conflict, in-flight, unknown outcome, concurrency."""

from __future__ import annotations

import threading

from sage100_agent.ledger import (
    CONFLICT,
    IN_FLIGHT,
    NEW,
    RECONCILE,
    REPLAY,
    Ledger,
    fingerprint,
)


def test_claim_complete_replay_conflict(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite3"))
    fp = fingerprint("POST", "/v1/purchase-orders", b'{"a":1,"b":2}')
    assert fp == fingerprint("POST", "/v1/purchase-orders", b'{"b":2, "a":1}')  # key order does not matter
    assert ledger.claim("k1", "c", "POST", "/p", fp).outcome == NEW
    assert ledger.claim("k1", "c", "POST", "/p", fp).outcome == IN_FLIGHT
    ledger.complete("k1", 201, b'{"po_number":"0000100"}')
    replay = ledger.claim("k1", "c", "POST", "/p", fp)
    assert (replay.outcome, replay.status, replay.body) == (REPLAY, 201, b'{"po_number":"0000100"}')
    other = fingerprint("POST", "/v1/purchase-orders", b'{"a":1,"b":3}')
    assert ledger.claim("k1", "c", "POST", "/p", other).outcome == CONFLICT
    assert ledger.rows() == [("k1", "done", 201)]


def test_release_allows_a_retry_and_unknown_forces_reconcile(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite3"))
    assert ledger.claim("k", "c", "POST", "/p", "fp").outcome == NEW
    ledger.release("k")
    assert ledger.rows() == []
    assert ledger.claim("k", "c", "POST", "/p", "fp").outcome == NEW
    ledger.mark_unknown("k")
    assert ledger.claim("k", "c", "POST", "/p", "fp").outcome == RECONCILE
    assert ledger.claim("k", "c", "POST", "/p", "fp").outcome == IN_FLIGHT


def test_stale_in_flight_row_is_reconciled(tmp_path):
    ledger = Ledger(str(tmp_path / "l.sqlite3"), stale_after=0.0)
    assert ledger.claim("k", "c", "POST", "/p", "fp").outcome == NEW
    assert ledger.claim("k", "c", "POST", "/p", "fp").outcome == RECONCILE


def test_concurrent_claims_of_one_key_have_exactly_one_owner(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    Ledger(path)
    outcomes: list[str] = []
    barrier = threading.Barrier(12)

    def worker():
        ledger = Ledger(path)
        barrier.wait()
        outcomes.append(ledger.claim("same", "c", "POST", "/p", "fp").outcome)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count(NEW) == 1
    assert outcomes.count(IN_FLIGHT) == 11
    assert len(Ledger(path).rows()) == 1


def test_paused_flag_and_po_index_persist(tmp_path):
    path = str(tmp_path / "l.sqlite3")
    ledger = Ledger(path)
    ledger.set_state("mode", "paused")
    ledger.remember_po("gid-1", "0000100")
    again = Ledger(path)
    assert again.get_state("mode") == "paused"
    assert again.known_po("gid-1") == "0000100"
    again.forget_po("gid-1")
    assert again.known_po("gid-1") is None


def test_a_body_nested_deeper_than_the_json_parser_goes_is_fingerprinted_as_bytes():
    deep = b"[" * 3000 + b"]" * 3000  # the parser raises RecursionError, not ValueError
    path = "/v1/purchase-orders"
    assert fingerprint("POST", path, deep) == fingerprint("POST", path, deep)
    assert fingerprint("POST", path, deep) != fingerprint("POST", path, b"[]")
