"""Agent-side SQLite ledger: idempotency keys, the paused flag, and an external-id -> PO index.

Reference §10.10: "Keep an agent-side idempotency ledger (SQLite) keyed by Idempotency-Key, because after
a timeout the outcome is unknown." Rules (docs/sage100-agent.md §4):

* first use of a key -> the caller owns it (``NEW``) and must ``complete`` or ``release`` it;
* same key, same payload, finished -> the stored status and body are replayed (``REPLAY``);
* same key, different payload -> ``CONFLICT`` (409 ``IDEMPOTENCY_CONFLICT``);
* same key while the first call still runs -> ``IN_FLIGHT`` (409 ``IDEMPOTENCY_IN_FLIGHT``, retryable);
* same key after an unknown outcome (504, or an in-flight row older than ``stale_after`` seconds, i.e.
  the agent died mid-write) -> ``RECONCILE``: the caller owns it again and must look the PO up by external
  id before writing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from .sqlite_store import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, client TEXT, method TEXT, path TEXT,
    fingerprint TEXT NOT NULL, state TEXT NOT NULL, status INTEGER, body BLOB, created_at REAL,
    completed_at REAL);
CREATE TABLE IF NOT EXISTS agent_state (name TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS po_index (external_id TEXT PRIMARY KEY, po_number TEXT NOT NULL, created_at REAL);
"""

NEW, REPLAY, CONFLICT, IN_FLIGHT, RECONCILE = "new", "replay", "conflict", "in_flight", "reconcile"


def fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 over method, path and the body (JSON bodies canonicalised so key order does not matter)."""
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        canonical = body
    return hashlib.sha256(method.upper().encode() + b"\n" + path.encode() + b"\n" + canonical).hexdigest()


@dataclass(frozen=True)
class Claim:
    outcome: str  # NEW | REPLAY | CONFLICT | IN_FLIGHT | RECONCILE
    status: int | None = None
    body: bytes | None = None


class Ledger(SqliteStore):
    """Thread-safe; one SQLite connection per thread, WAL mode, ``BEGIN IMMEDIATE`` for every claim."""

    def __init__(self, path: str, stale_after: float = 300.0) -> None:
        self.path = path
        self.stale_after = stale_after
        self._init_store()
        self._db().executescript(_SCHEMA)  # executescript commits on its own: keep it outside _tx

    # --- idempotency ---------------------------------------------------------------------------------

    def claim(self, key: str, client: str, method: str, path: str, print_: str) -> Claim:
        """Atomically decide what to do with a request carrying ``key`` (see the module docstring)."""
        now = time.time()
        with self._tx() as db:
            row = db.execute(
                "SELECT fingerprint, state, status, body, created_at FROM idempotency WHERE key=?", (key,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO idempotency (key, client, method, path, fingerprint, state, created_at) "
                    "VALUES (?,?,?,?,?,'in_flight',?)",
                    (key, client, method, path, print_, now),
                )
                return Claim(NEW)
            stored_print, state, status, body, created_at = row
            if stored_print != print_:
                return Claim(CONFLICT)
            if state == "done":
                return Claim(REPLAY, status=status, body=bytes(body or b""))
            if state == "unknown" or (state == "in_flight" and now - created_at > self.stale_after):
                db.execute("UPDATE idempotency SET state='in_flight', created_at=? WHERE key=?", (now, key))
                return Claim(RECONCILE)
            return Claim(IN_FLIGHT)

    def complete(self, key: str, status: int, body: bytes) -> None:
        """Store the final answer; later requests with the key replay it byte for byte."""
        with self._tx() as db:
            db.execute(
                "UPDATE idempotency SET state='done', status=?, body=?, completed_at=? WHERE key=?",
                (status, body, time.time(), key),
            )

    def release(self, key: str) -> None:
        """Forget the key (nothing was written, e.g. 423/503): the caller may retry with the same key."""
        with self._tx() as db:
            db.execute("DELETE FROM idempotency WHERE key=? AND state!='done'", (key,))

    def mark_unknown(self, key: str) -> None:
        """The write may have happened: the next use of the key reconciles by external id first."""
        with self._tx() as db:
            db.execute("UPDATE idempotency SET state='unknown' WHERE key=? AND state!='done'", (key,))

    def rows(self, key: str | None = None) -> list[tuple]:
        """Ledger rows (for tests and the operator): (key, state, status)."""
        sql = "SELECT key, state, status FROM idempotency WHERE (? IS NULL OR key=?) ORDER BY key"
        return list(self._db().execute(sql, (key, key)).fetchall())

    def purge(self, older_than_days: float = 90) -> int:
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM idempotency WHERE state='done' AND completed_at < ?",
                (time.time() - older_than_days * 86400,),
            )
            return cur.rowcount

    # --- agent state -------------------------------------------------------------------------------

    def get_state(self, name: str, default: str = "") -> str:
        row = self._db().execute("SELECT value FROM agent_state WHERE name=?", (name,)).fetchone()
        return row[0] if row else default

    def set_state(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO agent_state VALUES (?,?)", (name, value))

    # --- external id index (a fast path for BOI, which has no index on the UDF) -----------------------

    def remember_po(self, external_id: str, po_number: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO po_index VALUES (?,?,?)", (external_id, po_number, time.time())
            )

    def known_po(self, external_id: str) -> str | None:
        row = (
            self._db()
            .execute("SELECT po_number FROM po_index WHERE external_id=?", (external_id,))
            .fetchone()
        )
        return row[0] if row else None

    def forget_po(self, external_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM po_index WHERE external_id=?", (external_id,))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
