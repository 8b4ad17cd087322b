"""Signed-request nonces, remembered for the skew window so a request is accepted once (issue 18).

The store is SQLite next to the idempotency ledger, so a restart does not reopen the window: a request
captured a second before the agent restarted is still refused after it. It is bounded:

* rows older than the window (``timestamp + window < now``) are purged on every insert (indexed);
* at ``max_entries`` live nonces new requests are refused (``NonceStoreFull`` → 429, retryable) rather
  than forgetting a live nonce, which would let that request be replayed. At the default ±60 s window and
  100 000 entries that is ~800 signed requests a second, far above what one Sage server serves.

The window is read when purging, not stored per row, so widening ``max_skew_seconds`` across a restart
keeps older nonces long enough.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .sqlite_store import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonces (client TEXT NOT NULL, nonce TEXT NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (client, nonce));
CREATE INDEX IF NOT EXISTS nonces_ts ON nonces (ts);
"""

DEFAULT_MAX_ENTRIES = 100_000


class NonceStoreFull(Exception):
    """More live nonces than ``max_entries``: refuse the request (retry later) instead of forgetting one."""


class NonceStore(SqliteStore):
    """Thread-safe; one SQLite connection per thread, ``BEGIN IMMEDIATE`` for every insert."""

    def __init__(
        self,
        path: str,
        window_seconds: int,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.window = window_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._init_store()
        self._db().executescript(_SCHEMA)

    def remember(self, client: str, nonce: str, timestamp: int) -> bool:
        """Record a first use; False when ``client`` already used ``nonce`` inside the window."""
        with self._tx() as db:
            db.execute("DELETE FROM nonces WHERE ts < ?", (int(self.clock()) - self.window - 1,))
            if db.execute("SELECT 1 FROM nonces WHERE client=? AND nonce=?", (client, nonce)).fetchone():
                return False
            (live,) = db.execute("SELECT COUNT(*) FROM nonces").fetchone()
            if live >= self.max_entries:
                raise NonceStoreFull(f"{live} signed requests in the last {self.window} s")
            db.execute("INSERT INTO nonces VALUES (?,?,?)", (client, nonce, int(timestamp)))
            return True

    def count(self) -> int:
        return int(self._db().execute("SELECT COUNT(*) FROM nonces").fetchone()[0])

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
