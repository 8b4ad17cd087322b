"""The agent's small SQLite files (idempotency ledger, nonces, the simulated backend): one connection per
thread in WAL mode, and write transactions that take the write lock up front (BEGIN IMMEDIATE), so two
requests never interleave a read-then-write."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SqliteStore:
    """Subclasses set `self.path` and call `self._init_store()` before using `_db()` / `_tx()`."""

    path: str
    row_factory = None  # e.g. sqlite3.Row

    def _init_store(self) -> None:
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            if self.row_factory is not None:
                conn.row_factory = self.row_factory
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
