"""The soak's scheduler: people, vendors and workers interleaved at random, with faults injected.

Every step is chosen by one seeded `random.Random`, so a seed replays the same run:
    people     new bills / purchase orders in Acumatica (pushed), amount changes, approvals and memo
               edits on the tasks, purchase requests created and approved in Asana;
    vendors    Acumatica pushes (duplicated, reordered) and Asana webhook deliveries (batched,
               duplicated, reordered, dropped: Asana delivers at most once);
    workers    the next queued task (picked at random: reordering), django-q2's own scheduler turning
               due schedules into tasks, the fake clock moving on;
    faults     429 storms, 5xx before and after the write, timeouts, Acumatica record locks, Sage
               locks and lost answers, the agent down or draining, an Asana webhook deleted, and
               workers killed just before a vendor write or just after its answer arrived.
A killed worker (`WorkerKilled`, a BaseException) is dead from that moment: no further SQL (except the
rollback of the transaction it had open) and no further vendor call leaves it, its task is lost as
with the Redis broker; the recovery paths have to find the work again.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.utils.module_loading import import_string

from integrations.base.http import HttpClient
from tests.flows.documents.test_documents_support import D, F

from .world import World

VENDORS = ("ABCCONCRETE", "STEELWORKS", "RIVERLUMBER", "SUMMITELEC", "HEAVYRENT")
GOOD_REQUEST_VENDORS = ("ABC Concrete", "Metro Equipment Rental")
BAD_REQUEST_VENDORS = ("Ghost Supply", "Old Quarry")
COSTS = D["options"]["cost_code"]
APPROVED = D["options"]["approval_status"]["Approved"]
USERS = D["users"]


class WorkerKilled(BaseException):  # noqa: N818 - a process death, not an error
    """The worker process died here (SIGKILL): nothing after this point runs."""


@dataclass
class Reaper:
    """Kills the running worker at random: just before a vendor write is sent, or just after its answer
    (or its failure) arrived and was recorded, before the connector acts on it."""

    rng: random.Random
    probability: float = 0.0
    armed: bool = False
    dying: bool = False

    def maybe_kill(self, where: str) -> None:
        if self.dying:
            raise WorkerKilled(f"already dead ({where})")
        if self.armed and self.rng.random() < self.probability:
            self.dying = True
            raise WorkerKilled(where)

    def sql_guard(self, execute, sql, params, many, context):
        """A dead process sends no SQL; the rollback of its open transaction is what the database does."""
        if self.dying and not sql.lstrip().upper().startswith(("ROLLBACK", "RELEASE SAVEPOINT")):
            raise WorkerKilled("no SQL from a dead worker")
        return execute(sql, params, many, context)

    def install(self, monkeypatch) -> None:
        real_request, real_record = HttpClient.request, HttpClient._record
        reaper = self

        def request(self, method, path_or_url, **kwargs):
            if reaper.dying:
                raise WorkerKilled("no call from a dead worker")
            if method.upper() not in ("GET", "HEAD"):
                reaper.maybe_kill(f"before {self.system} {method} {path_or_url[:80]}")
            return real_request(self, method, path_or_url, **kwargs)

        def record(self, method, url, *args, **kwargs):
            real_record(self, method, url, *args, **kwargs)
            if method.upper() not in ("GET", "HEAD"):
                reaper.maybe_kill(f"after {self.system} {method} {url[:80]}")

        monkeypatch.setattr(HttpClient, "request", request)
        monkeypatch.setattr(HttpClient, "_record", record)


@dataclass
class Journal:
    """What the people did (the invariants' expectations) and what happened to the workers."""

    documents: list[tuple[str, str, str]] = field(default_factory=list)  # (entity, type, number)
    approved_tasks: set[str] = field(default_factory=set)
    memos: dict[str, str] = field(default_factory=dict)  # task gid → last memo written by a person
    requests: dict[str, str] = field(default_factory=dict)  # task gid → "valid" | "invalid"
    approved_requests: set[str] = field(default_factory=set)
    kills: list[str] = field(default_factory=list)
    killed_spans: list[tuple[str, int, int]] = field(default_factory=list)  # (system, start, end)
    task_errors: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    steps: int = 0

    def note_fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1


class Soak:
    def __init__(self, world: World, rng: random.Random, reaper: Reaper, journal: Journal):
        self.w, self.rng, self.reaper, self.j = world, rng, reaper, journal
        self.agent_back_at: int | None = None
        self.drain_until: int | None = None
        self.webhook_deleted = False

    # ---- workers ------------------------------------------------------------------------------------
    def as_worker(self, label: str, fn: Callable[[], Any], *, killable: bool) -> None:
        sims = {"asana": self.w.asana, "acumatica": self.w.acumatica}
        marks = {name: len(sim.dispatched) for name, sim in sims.items()}
        self.reaper.armed = killable
        try:
            with connection.execute_wrapper(self.reaper.sql_guard):
                fn()
        except WorkerKilled as death:
            self.j.kills.append(f"{label}: {death}")
            for name, sim in sims.items():
                self.j.killed_spans.append((name, marks[name], len(sim.dispatched)))
        except Exception:  # noqa: BLE001 - a task that crashes is a finding, reported at the end
            self.j.task_errors.append(f"{label}:\n{traceback.format_exc()}")
        finally:
            self.reaper.armed = False
            self.reaper.dying = False

    def run_queued(self, *, killable: bool, pick_random: bool = True) -> bool:
        if not self.w.queue:
            return False
        index = self.rng.randrange(len(self.w.queue)) if pick_random else 0
        func, args, kwargs = self.w.queue.pop(index)
        self.as_worker(f"{func}{args}", lambda: import_string(func)(*args, **kwargs), killable=killable)
        return True

    def run_scheduler(self) -> None:
        from django_q.scheduler import scheduler

        self.as_worker("scheduler", lambda: scheduler(broker=object()), killable=False)

    # ---- vendors delivering -------------------------------------------------------------------------
    def deliver_pushes(self, *, chaos: bool) -> None:
        acu = self.w.acumatica
        if chaos:
            self.rng.shuffle(acu._outbox)
            if acu._outbox and self.rng.random() < 0.3:
                acu.force_duplicate_next(1)
        acu.flush_pushes()

    def deliver_asana(self, *, chaos: bool) -> None:
        asana = self.w.asana
        if not chaos:
            asana.deliver_pending_events()
            return
        with asana.lock:
            for gid in list(asana.webhooks):
                hook = asana.webhooks[gid]
                events, hook["queue"] = list(hook["queue"]), []
                if not events:
                    continue
                self.rng.shuffle(events)
                while events:
                    size = self.rng.randint(1, min(5, len(events)))
                    batch, events = events[:size], events[size:]
                    roll = self.rng.random()
                    if roll < 0.07:
                        self.j.note_fault("asana delivery dropped")
                        continue  # at most once: Asana never delivers these
                    copies = 2 if roll > 0.85 else 1
                    for _ in range(copies):
                        if gid in asana.webhooks:
                            asana._deliver_to(gid, batch)

    # ---- people -------------------------------------------------------------------------------------
    def new_bill(self) -> None:
        acu = self.w.acumatica
        status = self.rng.choices(["Balanced", "Pending Approval", "On Hold"], [75, 18, 7])[0]
        bill = acu.add_bill(
            self.rng.choice(VENDORS),
            round(self.rng.uniform(100, 50_000), 2),
            status=status,
            vendor_ref=f"INV-{self.rng.randrange(10**6)}",
        )
        self.j.documents.append(("Bill", bill["Type"], bill["ReferenceNbr"]))
        if self.rng.random() < 0.8:
            acu.update_record("Bill", (bill["Type"], bill["ReferenceNbr"]))  # the push for the insert

    def new_order(self) -> None:
        acu = self.w.acumatica
        status = self.rng.choices(["Open", "Pending Approval", "On Hold"], [40, 50, 10])[0]
        po = acu.add_purchase_order(
            self.rng.choice(VENDORS), round(self.rng.uniform(500, 90_000), 2), status=status
        )
        self.j.documents.append(("PurchaseOrder", po["Type"], po["OrderNbr"]))
        if self.rng.random() < 0.8:
            acu.update_record("PurchaseOrder", (po["Type"], po["OrderNbr"]))

    def change_document(self) -> None:
        if not self.j.documents:
            return
        entity, type_, number = self.rng.choice(self.j.documents)
        record = self.w.acumatica.record(entity, type_, number)
        if record["Status"] in ("Open", "Closed", "Completed"):
            return  # released documents are not edited
        amount = round(self.rng.uniform(100, 50_000), 2)
        change = {"Amount": amount} if entity == "Bill" else {"OrderTotal": amount}
        self.w.acumatica.update_record(entity, (type_, number), **change)

    def _document_tasks(self) -> list[str]:
        asana = self.w.asana
        return [g for g, t in asana.tasks.items() if D["ap_project"] in t["projects"]]

    def approve_document(self) -> None:
        asana = self.w.asana
        open_tasks = [
            g for g in self._document_tasks() if asana.task_values(g).get(F["approval_status"]) is None
        ]
        if not open_tasks:
            return
        gid = self.rng.choice(open_tasks)
        self.w.clock.advance(1)
        asana.ui_update_task(gid, USERS["alice"], custom_fields={F["approval_status"]: APPROVED})
        self.j.approved_tasks.add(gid)

    def edit_memo(self) -> None:
        tasks = self._document_tasks()
        if not tasks:
            return
        gid = self.rng.choice(tasks)
        memo = f"memo {self.rng.randrange(10**6)}"
        self.w.clock.advance(1)
        self.w.asana.ui_update_task(gid, USERS["carol"], custom_fields={self.w.memo_field: memo})
        self.j.memos[gid] = memo

    def new_request(self) -> None:
        valid = self.rng.random() < 0.85
        vendor = self.rng.choice(GOOD_REQUEST_VENDORS if valid else BAD_REQUEST_VENDORS)
        cost = COSTS[self.rng.choice(["5000 Materials", "6000 Services"])]
        values = {
            F["vendor"]: vendor,
            F["amount"]: round(self.rng.uniform(50, 9_000), 2),
            F["cost_code"]: cost,
        }
        gid = self.w.asana.add_task(
            D["pr_project"], f"Request {len(self.j.requests) + 1}", custom_fields=values, user=USERS["bob"]
        )
        self.j.requests[gid] = "valid" if valid else "invalid"
        if self.rng.random() < 0.5:
            self.approve_request(gid)

    def approve_request(self, gid: str | None = None) -> None:
        pending = [g for g in self.j.requests if g not in self.j.approved_requests]
        if gid is None:
            if not pending:
                return
            gid = self.rng.choice(pending)
        self.w.clock.advance(1)
        self.w.asana.ui_update_task(gid, USERS["alice"], completed=True)
        self.j.approved_requests.add(gid)

    # ---- faults -------------------------------------------------------------------------------------
    def inject_fault(self) -> None:
        w, rng = self.w, self.rng
        asana, acu = w.asana.faults, w.acumatica.faults
        kind = rng.choice(
            [
                "asana 429 storm",
                "asana 5xx after write",
                "asana 5xx",
                "asana timeout",
                "acumatica 429",
                "acumatica 5xx after write",
                "acumatica 5xx",
                "acumatica timeout",
                "acumatica record lock",
                "sage record lock",
                "sage lost answer",
                "sage agent down",
                "sage agent draining",
                "asana webhook deleted",
            ]
        )
        writes = "POST" if rng.random() < 0.6 else "PUT"
        if kind == "asana 429 storm":
            asana.add("status", status=429, retry_after=rng.choice([1, 2, 20, 90]), times=rng.randint(2, 12))
        elif kind == "asana 5xx after write":
            path = rng.choice([r"^/tasks$", r"^/tasks/\d+$", r"/stories$", None])
            asana.add("drop_after_write", method=writes if path != r"^/tasks$" else "POST", path=path)
        elif kind == "asana 5xx":
            asana.add("status", status=rng.choice([500, 502, 503]), times=rng.randint(1, 3))
        elif kind == "asana timeout":
            asana.add("timeout", method=rng.choice(["GET", "POST", "PUT"]), times=1)
        elif kind == "acumatica 429":
            acu.add("status", status=429, times=rng.randint(1, 4))
        elif kind == "acumatica 5xx after write":
            path = rng.choice(
                [r"/Bill/ReleaseBill$", r"/Bill/Approve$", r"/PurchaseOrder/Approve$", r"/Bill$"]
            )
            acu.add("drop_after_write", method="PUT" if path == r"/Bill$" else "POST", path=path)
        elif kind == "acumatica 5xx":
            acu.add("status", status=rng.choice([500, 503]), times=rng.randint(1, 3))
        elif kind == "acumatica timeout":
            acu.add("timeout", method=rng.choice(["GET", "POST", "PUT"]), times=1)
        elif kind == "acumatica record lock":
            if self.j.documents:
                entity, type_, number = rng.choice(self.j.documents)
                w.acumatica.lock_record(entity, (type_, number), times=rng.randint(1, 3))
        elif kind == "sage record lock":
            target = rng.choice(["vendor:00-0000001", "vendor:00-0000150", "po_sequence"])
            w.backend.inject_lock(target, calls=rng.randint(1, 4))
        elif kind == "sage lost answer":
            w.backend.inject_unknown_outcome(calls=1)
        elif kind == "sage agent down":
            if self.agent_back_at is None:
                w.agent_down()
                self.agent_back_at = self.j.steps + rng.randint(20, 120)
        elif kind == "sage agent draining":
            if self.drain_until is None:
                w.agent.app.state.drain(0)
                self.drain_until = self.j.steps + rng.randint(10, 80)
        elif kind == "asana webhook deleted":
            if self.webhook_deleted or not w.asana.webhooks:
                return
            w.asana.delete_webhook_silently(rng.choice(sorted(w.asana.webhooks)))
            self.webhook_deleted = True
        self.j.note_fault(kind)

    def recover_agent(self, *, now: bool = False) -> None:
        if self.agent_back_at is not None and (now or self.j.steps >= self.agent_back_at):
            self.w.agent_up()
            self.agent_back_at = None
        if self.drain_until is not None and (now or self.j.steps >= self.drain_until):
            self.w.agent.app.state.resume()
            self.drain_until = None

    def clear_faults(self) -> None:
        self.w.asana.faults.clear()
        self.w.acumatica.faults.clear()
        self.w.acumatica.locks.clear()
        self.w.backend.clear_faults()
        self.recover_agent(now=True)
        self.reaper.probability = 0.0

    # ---- the two phases -----------------------------------------------------------------------------
    def chaos(self, *, steps: int, documents: int, requests: int, kill_probability: float) -> None:
        self.reaper.probability = kill_probability
        rng = self.rng
        people = {
            "new_bill": lambda: self.new_bill(),
            "new_order": lambda: self.new_order(),
            "change_document": self.change_document,
            "approve_document": self.approve_document,
            "edit_memo": self.edit_memo,
            "new_request": self.new_request,
            "approve_request": lambda: self.approve_request(),
        }
        actions = {
            **people,
            "deliver_pushes": lambda: self.deliver_pushes(chaos=True),
            "deliver_asana": lambda: self.deliver_asana(chaos=True),
            "worker": lambda: self.run_queued(killable=True),
            "scheduler": self.run_scheduler,
            "clock": lambda: self.w.clock.advance(rng.choice([1, 5, 15, 30, 60, 120, 300])),
            "fault": self.inject_fault,
        }
        weights = {
            "new_bill": 9,
            "new_order": 4,
            "change_document": 3,
            "approve_document": 8,
            "edit_memo": 3,
            "new_request": 5,
            "approve_request": 3,
            "deliver_pushes": 6,
            "deliver_asana": 8,
            "worker": 30,
            "scheduler": 4,
            "clock": 8,
            "fault": 4,
        }
        made_documents = made_requests = 0
        for _ in range(steps):
            self.j.steps += 1
            self.recover_agent()
            names = list(weights)
            if made_documents >= documents:
                names = [n for n in names if n not in ("new_bill", "new_order")]
            if made_requests >= requests:
                names = [n for n in names if n != "new_request"]
            name = rng.choices(names, [weights[n] for n in names])[0]
            if name in ("new_bill", "new_order"):
                made_documents += 1
            elif name == "new_request":
                made_requests += 1
            actions[name]()

    def quiet(self, *, max_rounds: int, min_minutes: int) -> int:
        """Faults cleared; time moves in 5-minute rounds and every recovery path runs to quiescence."""
        self.clear_faults()
        calm = 0
        for round_no in range(1, max_rounds + 1):
            self.j.steps += 1
            self.deliver_pushes(chaos=False)
            self.deliver_asana(chaos=False)
            self.run_scheduler()
            for _ in range(2000):
                if not self.run_queued(killable=False, pick_random=False):
                    break
                self.deliver_pushes(chaos=False)
                self.deliver_asana(chaos=False)
            idle = self._idle()
            calm = calm + 1 if idle else 0
            if calm >= 3 and round_no * 5 >= min_minutes:
                return round_no
            self.w.clock.advance(300)
        return max_rounds

    def _idle(self) -> bool:
        from django_q.models import Schedule

        from audit.models import InboundEvent

        pending_events = any(h["queue"] for h in self.w.asana.webhooks.values())
        retries = Schedule.objects.filter(schedule_type=Schedule.ONCE).exclude(repeats=0).exists()
        unfinished = InboundEvent.objects.filter(status__in=["queued", "received"]).exists()
        return not (self.w.queue or self.w.acumatica._outbox or pending_events or retries or unfinished)
