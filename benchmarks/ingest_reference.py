"""The `ingest` benchmark's reference: a plain WSGI app doing the same job as the product's Asana hook.

    gunicorn benchmarks.ingest_reference:app   (REF_DATABASE_URL, REF_REDIS_URL, REF_SECRET, REF_QUEUE)

Per delivery: read the body, check X-Hook-Signature (HMAC-SHA256 hex over the raw bytes, in constant
time), one durable `INSERT … ON CONFLICT DO NOTHING RETURNING id` of the raw body, its headers and a
dedupe key in autocommit, one LPUSH of the id, answer 200 (401 for a bad signature, 200 for a
re-delivery, like the product). No framework, no ORM: the floor the product is measured against.
One PostgreSQL connection and one Redis connection per worker process, opened on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

TABLE = "ref_inbound_event"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id bigserial PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    headers jsonb NOT NULL,
    raw_body bytea NOT NULL,
    dedupe_key varchar(300) UNIQUE
)
"""
_state: dict = {}


def _connections():
    if not _state:
        import psycopg
        import redis

        _state["db"] = psycopg.connect(os.environ["REF_DATABASE_URL"], autocommit=True)
        _state["redis"] = redis.Redis.from_url(os.environ["REF_REDIS_URL"])
        _state["secret"] = os.environ["REF_SECRET"].encode()
        _state["queue"] = os.environ["REF_QUEUE"]
    return _state


def _answer(start_response, status: str) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return [b""]


def app(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        return _answer(start_response, "405 Method Not Allowed")
    state = _connections()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    given = environ.get("HTTP_X_HOOK_SIGNATURE", "")
    expected = hmac.new(state["secret"], body, hashlib.sha256).hexdigest()
    if not given or not hmac.compare_digest(expected, given.strip().lower()):
        return _answer(start_response, "401 Unauthorized")
    headers = {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_") and k != "HTTP_COOKIE"}
    key = "ref:" + hashlib.sha256(body).hexdigest()
    row = (
        state["db"]
        .execute(
            f"INSERT INTO {TABLE} (headers, raw_body, dedupe_key) VALUES (%s, %s, %s) "  # noqa: S608 - constant
            "ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            (json.dumps(headers), body, key),
        )
        .fetchone()
    )
    if row is not None:
        state["redis"].lpush(state["queue"], row[0])
    return _answer(start_response, "200 OK")
