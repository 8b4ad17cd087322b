"""Issue 18: a signed request is accepted once and cannot be widened (nonce, signed Idempotency-Key,
scoped keys, rotation with two valid keys, nonces persisted across a restart and bounded)."""

from __future__ import annotations

import http.client
import json
from datetime import UTC, datetime, timedelta

import pytest

from sage100_agent.config import ConfigError, from_dict
from sage100_agent.ledger import Ledger
from sage100_agent.nonces import NonceStore, NonceStoreFull
from sage100_agent.server import create_app, start_in_thread
from sage100_agent.signing import sign_request

from .conftest import ADMIN_KEY, ADMIN_SECRET, API_KEY, SECRET, call, make_config, po_body

PO = "/v1/purchase-orders"


def send(agent, method: str, path: str, payload: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(agent.host, agent.port, timeout=15)
    try:
        conn.request(method, path, body=payload, headers={**headers, "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_a_replayed_create_is_refused_and_writes_nothing(agent, sim):
    payload = json.dumps(po_body()).encode()
    headers = sign_request(API_KEY, SECRET, "POST", PO, None, payload, idempotency_key="asana:1:v1")
    status, first = send(agent, "POST", PO, payload, headers)
    assert status == 201 and first["po_number"] == "0000100"
    status, again = send(agent, "POST", PO, payload, headers)  # the same bytes, inside the window
    assert status == 401 and again["error"]["code"] == "AUTH_INVALID"
    assert sim.count_pos() == 1 and len(agent.app.ledger.rows()) == 1
    # A read is not replayable either.
    headers = sign_request(API_KEY, SECRET, "GET", "/v1/ping")
    assert send(agent, "GET", "/v1/ping", b"", headers)[0] == 200
    assert send(agent, "GET", "/v1/ping", b"", headers)[0] == 401


def test_a_changed_idempotency_key_cannot_reuse_a_signature_or_a_nonce(agent, sim):
    payload = json.dumps(po_body()).encode()
    headers = sign_request(API_KEY, SECRET, "POST", PO, None, payload, idempotency_key="asana:1:v1")
    # Captured on the wire, sent under another key with the old signature: refused before any claim.
    status, body = send(agent, "POST", PO, payload, {**headers, "Idempotency-Key": "asana:1:v2"})
    assert status == 401 and body["error"]["code"] == "AUTH_INVALID"
    assert sim.count_pos() == 0 and agent.app.ledger.rows() == []
    # Re-signed with a changed key but the nonce already used: refused as a replay.
    assert send(agent, "POST", PO, payload, headers)[0] == 201
    resigned = sign_request(
        API_KEY, SECRET, "POST", PO, None, payload, idempotency_key="asana:1:v2", nonce=headers["X-Nonce"]
    )
    assert send(agent, "POST", PO, payload, resigned)[0] == 401
    assert sim.count_pos() == 1 and [r[0] for r in agent.app.ledger.rows()] == ["asana:1:v1"]
    # An honest retry signs afresh (new nonce, same key) and gets the stored answer.
    retry = call(agent, "POST", PO, po_body(), idem="asana:1:v1")
    assert retry.status == 201 and retry.headers["idempotent-replay"] == "true"


def test_the_connectors_key_cannot_drain_or_resume(agent, sim):
    for path in ("/v1/admin/drain", "/v1/admin/resume"):
        reply = call(agent, "POST", path, {"timeout_seconds": 1}, idem="x-" + path)
        assert reply.status == 403 and reply.json["error"]["code"] == "AUTH_FORBIDDEN"
    assert agent.app.state.mode == "running" and agent.app.ledger.get_state("mode") == ""
    assert call(agent, "POST", PO, po_body(), idem="k").status == 201  # it can still create
    assert call(agent, "GET", "/v1/vendors").status == 200  # and read
    # The operator's admin key drains, but cannot create purchase orders.
    admin = {"api_key": ADMIN_KEY, "secret": ADMIN_SECRET}
    assert call(agent, "POST", "/v1/admin/drain", {"timeout_seconds": 1}, idem="d", **admin).status == 200
    assert agent.app.state.mode == "paused"
    assert call(agent, "POST", "/v1/admin/resume", {}, idem="r", **admin).status == 200
    assert call(agent, "POST", PO, po_body("2"), idem="k2", **admin).status == 403
    assert sim.count_pos() == 1


def _rotation_config(tmp_path, valid_until):
    new_key, new_secret = "connector-new-key-0123456789", "connector-new-secret-0123456789abcdef"
    config = make_config(tmp_path)
    data = {
        "agent": {"backend": "simulated", "ledger_path": config.ledger_path},
        "server": {"host": "127.0.0.1", "allow_plain_http": True},
        "simulated": {"state_path": config.simulated_state_path},
        "auth": {
            "clients": [
                {
                    "name": "connector",
                    "api_key": new_key,
                    "hmac_secret": new_secret,
                    "previous_api_key": API_KEY,
                    "previous_hmac_secret": SECRET,
                    "previous_valid_until": valid_until,
                }
            ]
        },
    }
    return from_dict(data, env={}), new_key, new_secret


def test_both_keys_work_during_rotation_and_the_old_one_stops_at_its_deadline(tmp_path):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    config, new_key, new_secret = _rotation_config(tmp_path, later)
    agent = start_in_thread(create_app(config), port=0)
    try:
        old = call(agent, "POST", PO, po_body("1"), idem="a")  # the connector not yet switched
        new = call(agent, "POST", PO, po_body("2"), idem="b", api_key=new_key, secret=new_secret)
        assert (old.status, new.status) == (201, 201)
        # Same client, same scopes: the old key cannot drain either, and a mixed pair is refused.
        assert call(agent, "POST", "/v1/admin/drain", {}, idem="d").status == 403
        assert call(agent, "GET", "/v1/ping", api_key=new_key, secret=SECRET).status == 401
        assert agent.backend.count_pos() == 2
    finally:
        agent.stop()
    earlier = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    (tmp_path / "later").mkdir(exist_ok=True)
    config, new_key, new_secret = _rotation_config(tmp_path / "later", earlier)
    agent = start_in_thread(create_app(config), port=0)
    try:
        assert call(agent, "GET", "/v1/ping").status == 401  # the old pair expired
        assert call(agent, "GET", "/v1/ping", api_key=new_key, secret=new_secret).status == 200
    finally:
        agent.stop()


def test_nonces_survive_a_restart(tmp_path):
    config = make_config(tmp_path)
    headers = sign_request(API_KEY, SECRET, "GET", "/v1/ping")
    first = start_in_thread(create_app(config, ledger=Ledger(config.ledger_path)), port=0)
    try:
        assert send(first, "GET", "/v1/ping", b"", headers)[0] == 200
    finally:
        first.stop()
    second = start_in_thread(create_app(config, ledger=Ledger(config.ledger_path)), port=0)
    try:
        assert send(second, "GET", "/v1/ping", b"", headers)[0] == 401
    finally:
        second.stop()


def test_the_nonce_store_is_bounded_and_forgets_only_expired_nonces(tmp_path, agent):
    now = [1_000_000.0]
    store = NonceStore(str(tmp_path / "n.sqlite3"), window_seconds=60, max_entries=3, clock=lambda: now[0])
    for i in range(2):
        assert store.remember("c", f"nonce-{i:012d}", int(now[0]))
    assert not store.remember("c", "nonce-000000000000", int(now[0]))
    assert store.remember("other", "nonce-000000000000", int(now[0]))  # per client
    with pytest.raises(NonceStoreFull):
        store.remember("c", "nonce-000000000099", int(now[0]))
    now[0] += 62  # past the window: purged on the next insert, so the store has room again
    assert store.remember("c", "nonce-000000000099", int(now[0])) and store.count() == 1
    # Over HTTP a full store answers 429 (retryable) and the request does nothing.
    agent.app.nonces.max_entries = agent.app.nonces.count()
    reply = call(agent, "GET", "/v1/ping")
    assert reply.status == 429 and reply.json["error"]["retryable"] is True


def test_default_window_is_60_seconds_and_keys_must_be_distinct(tmp_path):
    assert make_config(tmp_path).max_skew_seconds == 60
    data = {
        "server": {"host": "127.0.0.1", "allow_plain_http": True},
        "auth": {
            "clients": [
                {"name": "a", "api_key": API_KEY, "hmac_secret": SECRET},
                {"name": "b", "api_key": API_KEY, "hmac_secret": SECRET},
            ]
        },
    }
    with pytest.raises(ConfigError, match="used twice"):
        from_dict(data, env={})
