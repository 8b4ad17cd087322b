"""State and test hooks of the simulated Sage 100 company (SQLite).

Split from ``simulated.py`` to keep modules small: the schema, the demo seed (a construction firm), the
per-thread connection, and the fault-injection hooks (record locks, lost answers) the tests and the
connector's sandbox drive. :class:`~.simulated.SimulatedBackend` inherits from :class:`SimulatedStore`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

from .fields import utc_to_sage
from .model import AgentError
from .sqlite_store import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vendors (division TEXT, vendor_no TEXT, name TEXT, status TEXT, terms_code TEXT,
    account_key TEXT, date_updated TEXT, time_updated TEXT, PRIMARY KEY (division, vendor_no));
CREATE TABLE IF NOT EXISTS gl_accounts (account_key TEXT PRIMARY KEY, account TEXT UNIQUE, description TEXT,
    status TEXT, main_account_code TEXT, account_type TEXT);
CREATE TABLE IF NOT EXISTS pos (po_number TEXT PRIMARY KEY, division TEXT, vendor_no TEXT, po_date TEXT,
    status TEXT, order_type TEXT, on_hold INTEGER, external_id TEXT, comment TEXT, header_json TEXT,
    date_updated TEXT, time_updated TEXT);
CREATE INDEX IF NOT EXISTS pos_external_id ON pos (external_id);
CREATE INDEX IF NOT EXISTS pos_date_updated ON pos (date_updated);
CREATE TABLE IF NOT EXISTS po_lines (po_number TEXT, line_key TEXT, item_code TEXT, item_type TEXT,
    description TEXT, comment_text TEXT, quantity TEXT, unit_cost TEXT, extension_amt TEXT, account_key TEXT,
    warehouse_code TEXT, job_json TEXT, PRIMARY KEY (po_number, line_key));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY, kind TEXT, target TEXT, message TEXT,
    until REAL, calls_left INTEGER, delay REAL);
"""

#: §2.3 ItemType codes by line kind
_ITEM_TYPES = {"inventory": "1", "special": "2", "comment": "4", "misc": "5"}

_DEMO_VENDORS = [
    ("00", "0000001", "ABC Concrete Supply", "A", "01", "00000002K"),
    ("00", "0000002", "Ridgeline Lumber & Truss", "A", "02", "00000002K"),
    ("00", "0000150", "Metro Equipment Rental", "A", "01", "00000003K"),
    ("00", "STEELCO", "SteelCo Rebar Fabricators", "A", "01", "00000002K"),
    ("00", "0000099", "Old Quarry Aggregates (inactive)", "I", "01", "00000002K"),
]
_DEMO_ACCOUNTS = [
    ("00000001K", "2000-00-00", "Accounts Payable", "A", "2000", "L"),
    ("00000002K", "6000-00-00", "Materials", "A", "6000", "E"),
    ("00000003K", "6100-00-00", "Equipment Rental", "A", "6100", "E"),
    ("00000004K", "5000-01-00", "Job Cost - Materials", "A", "5000", "E"),
    ("00000005K", "5000-02-00", "Job Cost - Subcontractors", "A", "5000", "E"),
    ("00000006K", "5000-03-00", "Job Cost - Equipment", "A", "5000", "E"),
    ("00000007K", "6900-00-00", "Small Tools (closed)", "I", "6900", "E"),
]


class SimulatedStore(SqliteStore):
    row_factory = sqlite3.Row

    """SQLite plumbing plus the hooks; ``clock`` returns an aware "now", ``tz`` is the Sage server zone."""

    def __init__(
        self,
        path: str,
        company: str = "ABC",
        tz: tzinfo | None = None,
        clock: Callable[[], datetime] | None = None,
        first_po_number: int = 100,
    ) -> None:
        self.path = path
        self.company = company.upper()
        self.tz = tz
        self.clock = clock or (lambda: datetime.now(UTC))
        self._init_store()
        self._db().executescript(_SCHEMA)  # executescript commits on its own: keep it outside _tx
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO counters VALUES ('po_number', ?)", (first_po_number,))

    # --- plumbing ---------------------------------------------------------------------------------

    def _stamp(self) -> tuple[str, str]:
        return utc_to_sage(self.clock(), self.tz)

    # --- test hooks ----------------------------------------------------------------------------------

    def seed_demo(self) -> None:
        """A small construction firm: five vendors (one inactive) and a chart with job-cost accounts."""
        date_updated, time_updated = self._stamp()
        with self._tx() as db:
            for row in _DEMO_VENDORS:
                db.execute(
                    "INSERT OR REPLACE INTO vendors VALUES (?,?,?,?,?,?,?,?)",
                    (*row, date_updated, time_updated),
                )
            for row in _DEMO_ACCOUNTS:
                db.execute("INSERT OR REPLACE INTO gl_accounts VALUES (?,?,?,?,?,?)", row)

    def add_vendor(
        self, division: str, vendor_no: str, name: str, status: str = "A", account_key: str = ""
    ) -> None:
        date_updated, time_updated = self._stamp()
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO vendors VALUES (?,?,?,?,?,?,?,?)",
                (division, vendor_no, name, status, "", account_key, date_updated, time_updated),
            )

    def add_gl_account(self, account_key: str, account: str, description: str, status: str = "A") -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO gl_accounts VALUES (?,?,?,?,?,?)",
                (account_key, account, description, status, account.split("-")[0], "E"),
            )

    def inject_lock(
        self,
        target: str,
        *,
        seconds: float | None = None,
        calls: int | None = None,
        message: str | None = None,
    ) -> None:
        """Lock ``vendor:<div>-<no>`` or ``po_sequence`` for ``seconds`` or the next ``calls`` attempts."""
        if seconds is None and calls is None:
            raise ValueError("give seconds or calls")
        text = message or f"The record is in use by another user ({target})."
        until = time.time() + seconds if seconds is not None else None
        with self._tx() as db:
            db.execute(
                "INSERT INTO faults (kind, target, message, until, calls_left, delay) "
                "VALUES ('lock',?,?,?,?,0)",
                (target, text, until, calls),
            )

    def inject_unknown_outcome(self, *, calls: int = 1, delay: float = 0.0) -> None:
        """The next ``calls`` creates commit, wait ``delay`` seconds, then answer 504 (outcome unknown)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO faults (kind, target, message, until, calls_left, delay) "
                "VALUES ('drop_answer','create','',NULL,?,?)",
                (calls, delay),
            )

    def clear_faults(self) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM faults")

    def touch_po(self, po_number: str, *, status: str | None = None, at: datetime | None = None) -> None:
        """Simulate a Sage user editing the PO header: bumps DateUpdated/TimeUpdated (and the status)."""
        date_updated, time_updated = utc_to_sage(at, self.tz) if at else self._stamp()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE pos SET date_updated=?, time_updated=?, status=COALESCE(?, status) WHERE po_number=?",
                (date_updated, time_updated, status, po_number),
            )
            if cur.rowcount != 1:
                raise KeyError(po_number)

    def delete_po(self, po_number: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM pos WHERE po_number=?", (po_number,))
            db.execute("DELETE FROM po_lines WHERE po_number=?", (po_number,))

    def count_pos(self, external_id: str | None = None) -> int:
        sql, args = (
            ("SELECT COUNT(*) FROM pos", ())
            if external_id is None
            else ("SELECT COUNT(*) FROM pos WHERE external_id=?", (external_id,))
        )
        return int(self._db().execute(sql, args).fetchone()[0])

    def _take_fault(self, db: sqlite3.Connection, kind: str, target: str) -> sqlite3.Row | None:
        db.execute(
            "DELETE FROM faults WHERE (until IS NOT NULL AND until < ?) OR calls_left <= 0", (time.time(),)
        )
        row = db.execute(
            "SELECT * FROM faults WHERE kind=? AND target=? ORDER BY id LIMIT 1", (kind, target)
        ).fetchone()
        if row is not None and row["calls_left"] is not None:
            db.execute("UPDATE faults SET calls_left = calls_left - 1 WHERE id=?", (row["id"],))
        return row

    def _check_lock(self, target: str, step: str, field: str) -> None:
        with self._tx() as db:
            row = self._take_fault(db, "lock", target)
        if row is not None:
            retry = max(1, int((row["until"] or time.time() + 1) - time.time()))
            raise AgentError(
                "RECORD_LOCKED",
                "Sage record is locked by another user; retry later",
                step=step,
                field=field,
                sage_message=row["message"],
                retry_after=retry,
            )
