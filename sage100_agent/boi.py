"""BOI backend: Sage 100's Business Object Interface through pywin32 COM (Windows only, imported lazily).

Follows reference sage100.md §1-§4 and the §10 checklist. Every ProvideX call goes through
:meth:`BOISession.call`, which marshals ByRef outputs as typed by-reference VARIANTs and reads them back
(``byref.py``: pywin32 fills ByRef arguments of late-bound objects only that way); when type information
exists pywin32 returns ``(retval, out1, …)`` instead and the tuple is used. Return codes: 1 ok, -1 ok with
a warning (kept), 0 failed (§1.2).

Threading: COM objects are apartment-bound, so each pooled session owns one worker thread (its STA,
§8.5 "one dedicated STA thread per session") and every call for that session runs there. A COM exception
marks the session broken; the pool discards it and builds a new one (§1.3).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import date
from typing import Any, TypeVar

from .backend import Backend, company_write_lock
from .boi_write import BOIOps
from .byref import Marshaller
from .config import AgentConfig, BOIConfig
from .ledger import Ledger
from .model import (
    AgentError,
    CreateResult,
    GLAccount,
    PurchaseOrder,
    PurchaseOrderRequest,
    UnknownOutcome,
    Vendor,
)
from .selftest import SelftestReport, run_boi_selftest

log = logging.getLogger("sage100_agent.boi")
T = TypeVar("T")

#: §1.3: the exact lock texts are [U]; classify "in use" / "locked" / "lock" as RECORD_LOCKED and log the
#: raw text. Whole words only (issue 19 item 6): "Vendor is blocked." is a validation error, not a lock.
#: A setting (``boi.lock_pattern``) so it can be refined from the customer's logs.
DEFAULT_LOCK_PATTERN = r"\b(?:in use|locked|locks?|locking)\b"
LOCK_PATTERN = re.compile(DEFAULT_LOCK_PATTERN, re.IGNORECASE)


def default_com_factory(prog_id: str) -> Callable[[], Any]:
    """``win32com.client.Dispatch(prog_id)``, imported only when a session is built (Windows)."""

    def factory() -> Any:
        import win32com.client  # type: ignore[import-not-found]  # pywin32, Windows only

        return win32com.client.Dispatch(prog_id)

    return factory


def _com_init() -> None:
    try:
        import pythoncom  # type: ignore[import-not-found]
    except ImportError:  # not on Windows (tests with a fake COM object)
        return
    pythoncom.CoInitialize()


class BOISession:
    """One ``SY_Session`` logged on to one company, with its own COM thread."""

    def __init__(
        self, factory: Callable[[], Any], cfg: BOIConfig, company: str, com_init: Callable[[], None]
    ) -> None:
        self.cfg = cfg
        self.company = company
        self.created_at = time.monotonic()
        self.broken = False
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="boi-session", initializer=com_init
        )
        self.script: Any = None
        self.ss: Any = None
        self.marshaller = Marshaller(cfg.byref)
        self.run(lambda: self._open(factory), timeout=cfg.acquire_timeout_seconds + 60)

    def _open(self, factory: Callable[[], Any]) -> None:
        # §1.1 session order: ProvideX.Script -> Init(Home) -> SY_Session -> SetUser -> SetCompany.
        self.script = factory()
        self.script.Init(self.cfg.home)
        self.ss = self.script.NewObject("SY_Session")
        cfg_names = self.cfg.names
        for method, args in (
            (cfg_names["set_user"], (self.cfg.user, self.cfg.password)),
            (cfg_names["set_company"], (self.company,)),
        ):
            code, _ = self.call(self.ss, method, *args)
            if code != 1:
                message = str(getattr(self.ss, "sLastErrorMsg", ""))
                self.broken = True
                raise AgentError(
                    "SAGE_LOGIN_FAILED", f"{method} failed", step="session", sage_message=message
                )

    def call(self, obj: Any, method: str, *args: Any) -> tuple[Any, tuple[Any, ...]]:
        """Invoke ``obj.method(*args)`` (``byref.OUT_STR``/``OUT_NUM`` mark outputs); return (rc, outputs)."""
        return self.marshaller.call(obj, method, *args)

    def run(self, fn: Callable[[], T], timeout: float) -> T:
        """Run ``fn`` on this session's COM thread; past ``timeout`` raise 504 (the call keeps running)."""
        future = self._executor.submit(fn)
        try:
            return future.result(timeout=timeout)
        except FutureTimeout:
            self.broken = True  # never hand a session with a hung call to another request
            raise UnknownOutcome(f"Sage did not answer within {timeout:.0f} s", step="session") from None
        except AgentError:
            raise
        except Exception as exc:  # pywintypes.com_error and friends: the session is unusable (§1.3)
            self.broken = True
            log.warning("COM error, session will be recycled: %r", exc)
            raise AgentError(
                "SAGE_COM_ERROR",
                "COM error talking to Sage; the session was recycled",
                step="session",
                sage_message=str(exc),
            ) from exc

    def close(self) -> None:
        def teardown() -> None:
            try:  # §1.1 teardown: nCleanup then DropObject on the session
                if self.ss is not None:
                    self.ss.nCleanup()
                    self.ss.DropObject()
            except Exception as exc:  # noqa: BLE001 — best effort on a possibly broken session
                log.info("session teardown failed: %r", exc)
            self.ss = self.script = None

        with contextlib.suppress(Exception):  # the thread may be hung in Sage; drop it anyway
            self._executor.submit(teardown).result(timeout=10)
        self._executor.shutdown(wait=False)


class SessionPool:
    """Up to ``pool_size`` sessions (each can hold a Sage license seat, §8.8), recycled after
    ``session_max_age_seconds`` or any COM error (UAF pattern, §1.3)."""

    def __init__(self, make: Callable[[], BOISession], cfg: BOIConfig) -> None:
        self._make = make
        self.cfg = cfg
        self._idle: list[BOISession] = []
        self._count = 0
        self._generation = 0
        self._cond = threading.Condition()

    def acquire(self) -> tuple[BOISession, int]:
        deadline = time.monotonic() + self.cfg.acquire_timeout_seconds
        with self._cond:
            while True:
                if self._idle:
                    return self._idle.pop(), self._generation
                if self._count < self.cfg.pool_size:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    raise AgentError("SAGE_BUSY", "all Sage sessions are busy", step="session", retry_after=5)
            generation = self._generation
        try:
            return self._make(), generation
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def release(self, session: BOISession, generation: int) -> None:
        too_old = time.monotonic() - session.created_at > self.cfg.session_max_age_seconds
        with self._cond:
            keep = not (session.broken or too_old or generation != self._generation)
            if keep:
                self._idle.append(session)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            session.close()

    def release_all(self) -> int:
        """Close idle sessions; busy ones close when returned (their generation is stale)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._generation += 1
        for session in idle:
            session.close()
        return len(idle)


class BOIBackend(Backend):
    """The real backend. ``com_factory``/``com_init`` are injectable so tests can use a fake COM object."""

    name = "boi"

    def __init__(
        self,
        cfg: BOIConfig,
        company: str,
        ledger: Ledger,
        *,
        tz: Any = None,
        com_factory: Callable[[], Any] | None = None,
        com_init: Callable[[], None] = _com_init,
        call_timeout: float = 120.0,
        today: Callable[[], date] = date.today,
        external_id_udf: str = "UDF_ASANA_GID",
    ) -> None:
        self.cfg = cfg
        self.company = company.upper()
        self.ledger = ledger
        self.call_timeout = call_timeout
        factory = com_factory or default_com_factory(cfg.prog_id)
        self.pool = SessionPool(lambda: BOISession(factory, cfg, self.company, com_init), cfg)
        self.ops = BOIOps(
            cfg=cfg,
            tz=tz,
            today=today,
            lock_pattern=re.compile(cfg.lock_pattern or DEFAULT_LOCK_PATTERN, re.IGNORECASE),
            cfg_udf=external_id_udf,
        )

    @classmethod
    def from_config(cls, config: AgentConfig) -> BOIBackend:
        ledger = Ledger(config.ledger_path)
        return cls(
            config.boi,
            config.company,
            ledger,
            tz=config.timezone(),
            call_timeout=config.write_timeout_seconds,
            external_id_udf=config.rules.external_id_udf,
        )

    def _with_session(self, fn: Callable[[BOISession], T]) -> T:
        session, generation = self.pool.acquire()
        try:
            return session.run(lambda: fn(session), timeout=self.call_timeout)
        finally:
            self.pool.release(session, generation)

    # --- Backend ------------------------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        facts = self._with_session(self.ops.ping)
        return {**facts, "backend": self.name, "sage_home": self.cfg.home}

    def search_vendors(self, q: str, division: str | None, after: str | None, limit: int) -> list[Vendor]:
        return self._with_session(lambda s: self.ops.search_vendors(s, q, division, after, limit))

    def get_vendor(self, division: str, vendor_no: str) -> Vendor:
        return self._with_session(lambda s: self.ops.get_vendor(s, division, vendor_no))

    def list_gl_accounts(self, q: str, status: str | None, after: str | None, limit: int) -> list[GLAccount]:
        return self._with_session(lambda s: self.ops.list_gl_accounts(s, q, status, after, limit))

    def get_gl_account(self, account_or_key: str) -> GLAccount:
        return self._with_session(lambda s: self.ops.get_gl_account(s, account_or_key))

    def get_purchase_order(self, po_number: str) -> PurchaseOrder:
        return self._with_session(lambda s: self.ops.get_purchase_order(s, po_number))

    def find_by_external_id(self, external_id: str) -> PurchaseOrder | None:
        known = self.ledger.known_po(external_id)  # fast path: POs this agent created
        if known:
            try:
                po = self.get_purchase_order(known)
                if po.external_id == external_id:
                    return po
            except AgentError as exc:
                if exc.code != "NOT_FOUND":
                    raise
            self.ledger.forget_po(external_id)
        return self._with_session(lambda s: self.ops.scan_external_id(s, external_id))

    def updated_on_or_after(self, day: date, include_lines: bool) -> list[PurchaseOrder]:
        return self._with_session(lambda s: self.ops.updated_on_or_after(s, day, include_lines))

    def create_purchase_order(self, request: PurchaseOrderRequest, *, dry_run: bool = False) -> CreateResult:
        with company_write_lock(self.company):  # §9: one writer per company
            existing = self.find_by_external_id(request.external_id)
            if existing is not None:
                raise AgentError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"purchase order {existing.po_number} has this external id",
                    step="header",
                    field=f"{self.ops.cfg_udf}$",
                    extra={"po_number": existing.po_number},
                )
            result = self._with_session(lambda s: self.ops.create(s, request, dry_run))
            if not dry_run:
                self.ledger.remember_po(request.external_id, result.po.po_number)
            return result

    def release_sessions(self) -> int:
        return self.pool.release_all()

    def selftest(self) -> SelftestReport:
        """Objects, methods, columns and three reads on one pooled session; writes nothing."""
        try:
            return self._with_session(
                lambda s: run_boi_selftest(
                    s, self.ops, self.company, self.ops.cfg_udf, self.cfg.next_number_column
                )
            )
        except AgentError as exc:  # cannot even log on: that is the finding
            report = SelftestReport(self.name, self.company)
            fix = "check boi.home, the Sage user and password, and Allow External Access (docs §8)"
            item = "logon" if exc.code == "SAGE_LOGIN_FAILED" else "session"
            report.add("SY_Session", item, "FAILED", f"{exc.code}: {exc.sage_message or exc.message}", fix)
            return report
