"""The backend interface: what the HTTP layer needs from "a Sage 100 company".

Two implementations ship: :class:`~.boi.BOIBackend` (the real thing, pywin32 COM on the Sage server) and
:class:`~.simulated.SimulatedBackend` (SQLite, for tests, the connector's sandbox and demos).

Extension contract — a new backend (e.g. ODBC reads + BOI writes, or a C# bridge) must:

1. Take an already validated :class:`~.model.PurchaseOrderRequest` (``fields.parse_create_request`` has
   normalised the vendor number, division, lengths, amounts and line types) and apply the Sage-side rules:
   unknown/inactive vendor, unknown/inactive GL account -> ``AgentError("SAGE_VALIDATION")`` (422);
   record locks -> ``AgentError("RECORD_LOCKED", retry_after=…)`` (423); a write whose commit status is
   unknown -> :class:`~.model.UnknownOutcome` (504). Never raise anything else for a data problem.
2. Refuse a second PO with the same external id: ``AgentError("DUPLICATE_EXTERNAL_ID",
   extra={"po_number": …})``. Check it inside the company write lock (:func:`company_write_lock`).
3. Leave nothing behind on failure: no half-written PO, no held record lock, no consumed session.
4. Report timestamps as Sage stores them (``date_updated`` YYYYMMDD + ``time_updated`` decimal hours,
   server-local) **and** as ``updated_at`` UTC ISO-8601 (``fields.sage_to_utc``).
5. Be thread-safe: the HTTP server calls it from several worker threads at once.
6. Make ``release_sessions`` drop every pooled connection to Sage so an administrator can take
   exclusive access; the next call may reconnect (the HTTP layer refuses calls while paused).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from datetime import date
from typing import TYPE_CHECKING, Any

from .model import CreateResult, GLAccount, PurchaseOrder, PurchaseOrderRequest, Vendor

if TYPE_CHECKING:
    from .selftest import SelftestReport

_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def company_write_lock(company: str) -> threading.Lock:
    """One writer per company (reference §9 "one writer queue per company", §8.1 locks)."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(company.upper(), threading.Lock())


class Backend(ABC):
    """A Sage 100 company as the agent sees it. See the module docstring for the extension contract."""

    #: short name reported by ``/v1/ping`` (``boi`` / ``simulated``)
    name: str = "abstract"
    company: str

    @abstractmethod
    def ping(self) -> dict[str, Any]:
        """Cheap health check; return facts for ``/v1/ping`` (must not write)."""

    @abstractmethod
    def search_vendors(self, q: str, division: str | None, after: str | None, limit: int) -> list[Vendor]:
        """Vendors whose number or name contains ``q`` (case-insensitive), ordered by ``division-vendor_no``,
        starting strictly after the ``after`` id. ``q`` empty means all."""

    @abstractmethod
    def get_vendor(self, division: str, vendor_no: str) -> Vendor:
        """One vendor by normalised key; ``AgentError("NOT_FOUND")`` when absent."""

    @abstractmethod
    def list_gl_accounts(self, q: str, status: str | None, after: str | None, limit: int) -> list[GLAccount]:
        """GL accounts ordered by formatted ``account``, after ``after``; ``status`` filters A/I/D."""

    @abstractmethod
    def get_gl_account(self, account_or_key: str) -> GLAccount:
        """One account by formatted number (``6000-01-00``) or by 9-character ``AccountKey``."""

    @abstractmethod
    def create_purchase_order(self, request: PurchaseOrderRequest, *, dry_run: bool = False) -> CreateResult:
        """Create the PO (or, on ``dry_run``, run every check and return a preview without committing)."""

    @abstractmethod
    def get_purchase_order(self, po_number: str) -> PurchaseOrder:
        """One PO with its lines; ``AgentError("NOT_FOUND")`` when absent (deleted or purged, §2.4)."""

    @abstractmethod
    def find_by_external_id(self, external_id: str) -> PurchaseOrder | None:
        """The PO whose external-id UDF (``UDF_ASANA_GID``) equals ``external_id``, or None."""

    @abstractmethod
    def updated_on_or_after(self, day: date, include_lines: bool) -> list[PurchaseOrder]:
        """POs whose server-local ``DateUpdated`` >= ``day`` (day granularity, §5: the caller filters on
        the full timestamp). Each PO carries ``updated_at`` in UTC."""

    @abstractmethod
    def release_sessions(self) -> int:
        """Drop pooled Sage sessions (drain for maintenance); return how many were released."""

    def selftest(self) -> SelftestReport:
        """Prove, without writing, that what the backend calls exists (``selftest.py``)."""
        from .selftest import SelftestReport

        report = SelftestReport(self.name, self.company)
        report.add(self.name, "selftest", "unverified", "this backend has no selftest")
        return report

    def close(self) -> None:
        """Release everything at shutdown."""
        self.release_sessions()
