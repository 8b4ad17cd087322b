"""Property: every release happens after an approval whose Asana time is later than the last change of
the guarded values it released, at the amount the approver saw, and no document is released twice.

Hypothesis interleaves what people, clocks and vendors do to one bill at a time — the clerk edits the
amount, deletes the bill and enters the number again; approvers approve, reject and re-approve; Asana
delivers late, twice or out of order, or never (the catch-up poll then finds it); a release's answer is
lost; syncs run whenever — and checks the history in the sandboxes after every step. Each example uses a
fresh bill number, so examples do not disturb each other. `MONEY_PROPERTY_EXAMPLES` sizes a run; a
failure prints the example and a reproduce blob.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from integrations.base import errors
from integrations.flows.documents.sync import DocumentSync
from integrations.flows.inbound import watchdog
from integrations.flows.inbound.tasks import poll_approvals
from integrations.models import RecordLink
from tests.flows.inbound.harness import OPT, F, World, world  # noqa: F401
from tests.money_safety.properties import run_machine

AMOUNTS = st.sampled_from([1000.0, 1000.5, 19000.0, 250.0])


@dataclass
class Approval:
    at: float  # the sandbox Asana's clock
    task: str
    amount: float  # what the task showed when the approver clicked
    after_write: bool  # given after the connector's last write of a guarded value to that task


@dataclass
class History:
    approvals: list[Approval] = field(default_factory=list)
    releases_seen: int = 0


def machine_for(w: World):
    counter = {"n": 0}

    class Interleavings(RuleBasedStateMachine):
        @initialize(amount=AMOUNTS)
        def new_bill(self, amount):
            # Nothing of an earlier example may reach this one: its faults and undelivered events go.
            w.acumatica.faults.clear()
            for hook in w.asana.webhooks.values():
                hook["queue"] = []
            counter["n"] += 1
            self.ref = f"PB-{counter['n']:05d}"
            w.acumatica.add_bill("ABCCONCRETE", amount, reference_nbr=self.ref)
            self.history = History()
            self.held: list = []
            self.released: dict[int, Decimal] = {}  # generation → amount released
            self.last_write: dict[str, float] = {}  # task → sim time of the connector's last amount write
            self.sync()

        # ---- helpers -----------------------------------------------------------------------------
        def sync(self):
            before = {g: w.asana.tasks[g]["custom_values"].get(F["amount"]) for g in self.tasks()}
            with contextlib.suppress(errors.RetryableError):  # the task queue would retry it later
                DocumentSync(w.bills_flow, acumatica=w.clients.acumatica, asana=w.clients.asana).process(
                    "Bill", self.ref
                )
            for gid in self.tasks():
                if w.asana.tasks[gid]["custom_values"].get(F["amount"]) != before.get(gid):
                    self.last_write[gid] = w.clock.now
                    for a in self.history.approvals:
                        if a.task == gid:
                            a.after_write = False

        def tasks(self) -> list[str]:
            return [
                link.asana_task_gid
                for link in RecordLink.objects.filter(acumatica_ref=self.ref).exclude(asana_task_gid="")
            ]

        def live_task(self) -> str | None:
            link = RecordLink.objects.filter(acumatica_ref=self.ref).order_by("-generation").first()
            return link.asana_task_gid if link and link.is_live and link.asana_task_gid else None

        def bill(self):
            return w.acumatica.record("Bill", "Bill", self.ref)

        def tick(self, seconds=3):
            w.clock.now += seconds

        # ---- people --------------------------------------------------------------------------------
        # No precondition reads the bill: a lost release answer completes in the background, so its
        # status may change between two replays of an example (hypothesis needs stable preconditions).
        @rule(amount=AMOUNTS)
        def clerk_edits_amount(self, amount):
            if self.bill() is None or self.bill()["Status"] != "Balanced":
                return  # Acumatica allows no edit of a released bill
            self.tick()
            w.acumatica.update_record("Bill", ("Bill", self.ref), Amount=amount)

        @rule()
        def documents_sync(self):
            self.tick()
            self.sync()

        @rule(how=st.sampled_from(["approve", "reject", "pending"]))
        def approver_acts(self, how):
            gid = self.live_task()
            if gid is None:
                return  # no task yet (its create is waiting for a retry)
            self.tick()
            option = {"approve": "Approved", "reject": "Rejected", "pending": "Pending"}[how]
            w.asana.ui_update_task(
                gid, None, custom_fields={F["approval_status"]: OPT["approval_status"][option]}
            )
            if how == "approve":
                shown = w.asana.tasks[gid]["custom_values"].get(F["amount"])
                self.history.approvals.append(Approval(w.clock.now, gid, shown, True))
            self.hold()

        @rule()
        def clerk_deletes_and_reenters(self):
            if self.bill() is None or self.bill()["Status"] != "Balanced":
                return  # a released bill cannot be deleted
            self.tick()
            amount = self.bill()["Amount"]
            del w.acumatica.records["Bill"][("Bill", self.ref)]
            self.tick()
            w.acumatica.add_bill("ABCCONCRETE", amount, reference_nbr=self.ref)

        # ---- Asana's deliveries and our polls -------------------------------------------------------
        def hold(self):
            for hook in w.asana.webhooks.values():
                self.held.extend(hook["queue"])
                hook["queue"] = []

        @rule(duplicate=st.booleans(), reverse=st.booleans(), drop=st.booleans())
        def asana_delivers(self, duplicate, reverse, drop):
            self.tick()
            events = list(self.held)
            self.held = []
            if drop:
                return  # lost for good: only the catch-up poll can see it
            if reverse:
                events.reverse()
            if duplicate:
                events = events + events
            for hook in w.asana.webhooks.values():
                hook["queue"].extend(events)
                break
            w.asana.deliver_pending_events()

        @rule()
        def catch_up_poll(self):
            self.tick(30)
            with contextlib.suppress(errors.RetryableError):
                poll_approvals(w.tenant.pk)

        @rule()
        def a_release_answer_is_lost(self):
            w.acumatica.faults.add("drop_after_write", method="POST", path="/Bill/ReleaseBill$")

        # ---- the property -------------------------------------------------------------------------
        @invariant()
        def every_release_is_bound_to_an_approval_of_what_it_released(self):
            releases = [
                req
                for req, status in w.acumatica.dispatched
                if req.method == "POST"
                and req.path.endswith("/Bill/ReleaseBill")
                and req.json()["entity"]["ReferenceNbr"]["value"] == self.ref
            ]
            if len(releases) == self.history.releases_seen:
                return
            assert len(releases) == self.history.releases_seen + 1, "released twice"
            self.history.releases_seen = len(releases)
            link = RecordLink.objects.filter(acumatica_ref=self.ref).order_by("-generation").first()
            assert link.generation not in self.released, "a generation was released twice"
            amount = Decimal(str(self.bill()["Amount"]))
            self.released[link.generation] = amount
            valid = [
                a
                for a in self.history.approvals
                if a.task == link.asana_task_gid and a.after_write and Decimal(str(a.amount)) == amount
            ]
            assert valid, (
                f"{self.ref} released at {amount} without an approval of that amount given after the "
                f"connector's last write; approvals: {self.history.approvals}"
            )

    return Interleavings


@pytest.mark.slow
def test_releases_bind_to_what_was_approved_under_any_interleaving(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    world.acumatica.keep_dispatched = True
    run_machine(machine_for(world), steps=20)
