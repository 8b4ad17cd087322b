"""The WSGI app end-to-end over loopback HTTP (Waitress): auth, idempotency, errors, drain, polling."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote

from .conftest import ADMIN_KEY, ADMIN_SECRET, READ_KEY, call, po_body


def test_ping_reports_company_version_backend_and_state(agent):
    reply = call(agent, "GET", "/v1/ping")
    assert reply.status == 200
    data = reply.json
    assert (data["company"], data["backend"], data["state"], data["paused"]) == (
        "ABC",
        "simulated",
        "running",
        False,
    )
    assert data["agent_version"] == reply.headers["x-agent-version"]


def test_unsigned_bad_and_skewed_requests_are_401_with_envelope(agent):
    assert call(agent, "GET", "/v1/ping", secret="wrong-secret-0123456789abcdef0123").status == 401
    reply = call(agent, "GET", "/v1/ping", timestamp=int(time.time()) - 301)
    assert reply.status == 401
    assert reply.json["error"]["code"] == "AUTH_INVALID" and reply.json["error"]["retryable"] is False
    # Signed for one path, sent to another (query tampering).
    reply = call(agent, "GET", "/v1/vendors?q=a", extra_headers={})
    assert reply.status == 200
    import http.client

    from sage100_agent.signing import sign_request

    conn = http.client.HTTPConnection(agent.host, agent.port, timeout=5)
    conn.request(
        "GET",
        "/v1/vendors?q=b",
        headers=sign_request(
            "test-api-key-0123456789", "test-hmac-secret-0123456789abcdef0123456789", "GET", "/v1/vendors?q=a"
        ),
    )
    assert conn.getresponse().status == 401
    conn.close()


def test_scope_is_enforced(agent, sim):
    reply = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k1", api_key=READ_KEY)
    assert reply.status == 403 and reply.json["error"]["code"] == "AUTH_FORBIDDEN"
    assert sim.count_pos() == 0


def test_vendor_and_gl_endpoints(agent):
    reply = call(agent, "GET", "/v1/vendors?q=lumber")
    assert [v["id"] for v in reply.json["items"]] == ["00-0000002"]
    one = call(agent, "GET", "/v1/vendors/0-150").json  # normalised: division 00, vendor 0000150
    assert one["name"] == "Metro Equipment Rental" and one["active"] is True
    assert call(agent, "GET", "/v1/vendors/00-9999999").status == 404
    page = call(agent, "GET", "/v1/vendors?limit=2").json
    assert len(page["items"]) == 2 and page["next_cursor"] == "00-0000002"
    accounts = call(agent, "GET", "/v1/gl-accounts?status=I").json["items"]
    assert [(a["account"], a["active"]) for a in accounts] == [("6900-00-00", False)]
    assert call(agent, "GET", "/v1/gl-accounts/6000-00-00").json["account_key"] == "00000002K"


def test_create_then_replay_returns_same_status_and_body(agent, sim):
    first = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="asana:1209876543210987:v1")
    assert first.status == 201
    assert first.json["po_number"] == "0000100" and first.json["totals"]["amount"] == "1542.50"
    again = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="asana:1209876543210987:v1")
    assert (again.status, again.body) == (first.status, first.body)
    assert again.headers["idempotent-replay"] == "true"
    assert sim.count_pos() == 1
    assert agent.app.ledger.rows() == [("asana:1209876543210987:v1", "done", 201)]
    fetched = call(agent, "GET", "/v1/purchase-orders/100").json
    assert fetched["po_number"] == "0000100" and len(fetched["lines"]) == 3


def test_same_key_different_payload_is_409_conflict(agent, sim):
    assert call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k").status == 201
    reply = call(agent, "POST", "/v1/purchase-orders", po_body(comment="changed"), idem="k")
    assert reply.status == 409 and reply.json["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert sim.count_pos() == 1


def test_missing_idempotency_key_is_400(agent, sim):
    reply = call(agent, "POST", "/v1/purchase-orders", po_body())
    assert reply.status == 400 and reply.json["error"]["field"] == "Idempotency-Key"
    assert sim.count_pos() == 0


def test_a_signed_body_nested_deeper_than_the_json_parser_goes_is_400_not_500(agent, sim):
    deep = b"[" * 3000 + b"]" * 3000  # the parser raises RecursionError, not ValueError
    reply = call(agent, "POST", "/v1/purchase-orders", raw_body=deep, idem="deep")
    assert reply.status == 400 and reply.json["error"]["code"] == "VALIDATION_ERROR"
    assert sim.count_pos() == 0


def test_duplicate_external_id_with_new_key_is_409_with_po_number(agent, sim):
    call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k1")
    reply = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k2")
    assert reply.status == 409
    assert (
        reply.json["error"]["code"] == "DUPLICATE_EXTERNAL_ID"
        and reply.json["error"]["po_number"] == "0000100"
    )
    assert sim.count_pos() == 1
    assert (
        call(agent, "GET", "/v1/purchase-orders?external_id=1209876543210987").json["po_number"] == "0000100"
    )
    assert call(agent, "GET", "/v1/purchase-orders?external_id=nope").status == 404


def test_concurrent_requests_with_one_key_write_once(agent, sim):
    replies = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        replies.append(call(agent, "POST", "/v1/purchase-orders", po_body(), idem="same-key"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in replies)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    for r in replies:
        if r.status == 409:
            assert r.json["error"]["code"] == "IDEMPOTENCY_IN_FLIGHT" and r.json["error"]["retryable"]
    assert sim.count_pos() == 1
    assert len(agent.app.ledger.rows()) == 1


def test_validation_error_is_400_and_remembered(agent, sim):
    body = po_body()
    body["lines"][0]["quantity"] = "0"
    reply = call(agent, "POST", "/v1/purchase-orders", body, idem="bad")
    err = reply.json["error"]
    assert (reply.status, err["code"], err["step"], err["field"]) == (
        400,
        "VALIDATION_ERROR",
        "line[1]",
        "QuantityOrdered",
    )
    assert set(err) >= {"code", "message", "retryable", "step", "field", "sage_message"}
    assert agent.app.ledger.rows() == [("bad", "done", 400)]
    assert sim.count_pos() == 0


def test_sage_validation_422(agent, sim):
    body = po_body()
    body["lines"][0]["gl_account"] = "6900-00-00"
    reply = call(agent, "POST", "/v1/purchase-orders", body, idem="k")
    assert reply.status == 422 and reply.json["error"]["code"] == "SAGE_VALIDATION"
    assert sim.count_pos() == 0


def test_lock_is_423_retryable_and_the_same_key_can_retry(agent, sim):
    sim.inject_lock("vendor:00-0000001", calls=1)
    reply = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k")
    assert reply.status == 423 and reply.json["error"]["retryable"] is True and "retry-after" in reply.headers
    assert agent.app.ledger.rows() == []  # released: nothing was written
    assert call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k").status == 201
    assert sim.count_pos() == 1


def test_lost_answer_is_504_and_the_retry_reconciles_without_a_second_po(agent, sim):
    sim.inject_unknown_outcome(calls=1)
    reply = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k")
    assert reply.status == 504 and reply.json["error"]["code"] == "TIMEOUT"
    assert agent.app.ledger.rows() == [("k", "unknown", None)]
    retry = call(agent, "POST", "/v1/purchase-orders", po_body(), idem="k")
    assert retry.status == 201 and retry.json["reconciled"] is True and retry.json["po_number"] == "0000100"
    assert sim.count_pos() == 1


def test_dry_run_needs_no_key_and_writes_nothing(agent, sim):
    reply = call(agent, "POST", "/v1/purchase-orders?dry_run=true", po_body())
    assert reply.status == 200 and reply.json["dry_run"] is True and reply.json["warnings"] == []
    assert sim.count_pos() == 0 and agent.app.ledger.rows() == []


def test_drain_refuses_new_writes_and_resume_restores(agent, sim):
    slow_started = threading.Event()
    original = sim.create_purchase_order

    def slow_create(request, *, dry_run=False):
        slow_started.set()
        time.sleep(0.5)
        return original(request, dry_run=dry_run)

    sim.create_purchase_order = slow_create
    results = {}
    writer = threading.Thread(
        target=lambda: results.setdefault(
            "w", call(agent, "POST", "/v1/purchase-orders", po_body(), idem="inflight")
        )
    )
    writer.start()
    assert slow_started.wait(5)
    admin = {"api_key": ADMIN_KEY, "secret": ADMIN_SECRET}
    drained = call(agent, "POST", "/v1/admin/drain", {"timeout_seconds": 10}, idem="drain-1", **admin)
    writer.join()
    assert drained.json == {"state": "paused", "drained": True, "in_flight": 0, "released_sessions": 0}
    assert results["w"].status == 201  # the in-flight write finished
    refused = call(agent, "POST", "/v1/purchase-orders", po_body("2"), idem="during-drain")
    assert refused.status == 503 and refused.json["error"]["code"] == "SAGE_PAUSED"
    assert refused.json["error"]["retryable"] is True and refused.headers["retry-after"] == "60"
    assert call(agent, "GET", "/v1/vendors").status == 503
    assert call(agent, "GET", "/v1/ping").json["paused"] is True
    assert agent.app.ledger.get_state("mode") == "paused"
    assert call(agent, "POST", "/v1/admin/resume", {}, idem="resume-1", **admin).json == {"state": "running"}
    assert call(agent, "POST", "/v1/purchase-orders", po_body("2"), idem="during-drain").status == 201
    assert sim.count_pos() == 2


def test_changed_since_converts_decimal_hours_to_utc_and_honours_overlap(agent, sim):
    sim.clock = lambda: datetime(2025, 3, 1, 20, 30, 30, tzinfo=UTC)  # Chicago 14:30:30 -> "14.50833"
    call(agent, "POST", "/v1/purchase-orders", po_body("a"), idem="a")
    sim.clock = lambda: datetime(2025, 3, 2, 5, 59, 0, tzinfo=UTC)  # Chicago 2025-03-01 23:59:00
    call(agent, "POST", "/v1/purchase-orders", po_body("b"), idem="b")
    sim.clock = lambda: datetime(2025, 3, 2, 6, 1, 0, tzinfo=UTC)  # Chicago 2025-03-02 00:01:00
    call(agent, "POST", "/v1/purchase-orders", po_body("c"), idem="c")

    def changed(since, overlap=0, extra=""):
        path = f"/v1/purchase-orders?updated_since={quote(since)}&overlap_seconds={overlap}{extra}"
        reply = call(agent, "GET", path)
        assert reply.status == 200, reply.body
        return reply.json

    data = changed("2025-03-01T20:30:30Z")
    assert [(i["external_id"], i["updated_at"]) for i in data["items"]] == [
        ("a", "2025-03-01T20:30:30Z"),
        ("b", "2025-03-02T05:59:00Z"),
        ("c", "2025-03-02T06:01:00Z"),
    ]
    assert data["items"][0]["sage_updated"] == {"date_updated": "20250301", "time_updated": "14.50833"}
    assert [i["external_id"] for i in changed("2025-03-02T06:00:00Z")["items"]] == ["c"]
    # The overlap reaches back across the server-local midnight into the previous Sage day.
    assert [i["external_id"] for i in changed("2025-03-02T06:00:00Z", overlap=120)["items"]] == ["b", "c"]
    page = changed("2025-03-01T00:00:00Z", extra="&limit=2")
    assert len(page["items"]) == 2 and "lines" not in page["items"][0]
    rest = changed("2025-03-01T00:00:00Z", extra=f"&limit=2&cursor={page['next_cursor']}&include=lines")
    assert [i["external_id"] for i in rest["items"]] == ["c"] and rest["next_cursor"] is None
    assert len(rest["items"][0]["lines"]) == 3
    bad = call(agent, "GET", "/v1/purchase-orders?updated_since=2025-03-01T00:00:00")
    assert bad.status == 400 and bad.json["error"]["field"] == "updated_since"


def test_unknown_route_and_method(agent):
    assert call(agent, "GET", "/v1/nope").status == 404
    reply = call(agent, "DELETE", "/v1/ping")
    assert reply.status == 405 and json.loads(reply.body)["error"]["code"] == "METHOD_NOT_ALLOWED"
