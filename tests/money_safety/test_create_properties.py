"""Property: one open task per document generation, whatever happens to a create.

Hypothesis interleaves creates whose answers are lost (timeouts, 5xx after the write, workers killed
before the GID is stored), 429s, leases running out, Asana's clock up to ±15 minutes off the
connector's, a lagging search index, and people renaming, moving and retyping the new task — and checks
after every step that at most one open task carries the document, and at the end, after a quiet phase,
that exactly one does and the record is linked to it (or waits for a person, who then decides).
`MONEY_PROPERTY_EXAMPLES` sizes a run.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from integrations.base import errors
from integrations.flows.documents import parked
from integrations.flows.documents.sync import DocumentSync
from integrations.models import RecordLink
from tests.flows.documents.test_documents_support import *  # noqa: F403
from tests.flows.documents.test_documents_support import D, F
from tests.money_safety.properties import run_machine


class Killed(BaseException):
    pass


def machine_for(make_sync, asana, acu, now, monkeypatch):
    counter = {"n": 0}

    class Creates(RuleBasedStateMachine):
        @initialize()
        def new_bill(self):
            counter["n"] += 1
            self.ref = f"{900000 + counter['n']:06d}"
            acu.add_bill("ABCCONCRETE", 100.0 + counter["n"], reference_nbr=self.ref)
            self.mine: set[str] = set()  # every task ever created for this bill
            asana.faults.clear()  # nothing of an earlier example reaches this one
            asana.control("set_clock_offset", seconds=0)
            asana.control("set_search_lag", seconds=0)

        def key_line(self) -> str:
            return f"· Bill/{self.ref} ·"

        def notice_new_tasks(self):
            for gid, task in asana.tasks.items():
                if self.key_line() in (task.get("notes") or ""):
                    self.mine.add(gid)

        def attempt(self, kill: bool = False):
            def crash(*_a, **_k):
                raise Killed("worker killed after the create")

            with monkeypatch.context() as m:
                if kill:
                    m.setattr(DocumentSync, "store_created", crash)
                with contextlib.suppress(errors.RetryableError, Killed):
                    make_sync().process("Bill", self.ref)
            self.notice_new_tasks()

        # ---- what happens --------------------------------------------------------------------------
        @rule(kill=st.booleans())
        def sync(self, kill):
            self.attempt(kill)

        @rule(fault=st.sampled_from(["drop_after_write", "timeout", "500", "429"]))
        def sync_with_a_vendor_fault(self, fault):
            if fault in ("500", "429"):
                asana.faults.add("status", method="POST", path="^/tasks$", status=int(fault), retry_after=1)
            else:
                asana.faults.add(fault, method="POST", path="^/tasks$")
            self.attempt()
            asana.faults.clear()

        @rule(seconds=st.sampled_from([5, 60, 130, 400, 1000]))
        def time_passes(self, seconds):
            now.advance(seconds)

        @rule(offset=st.integers(min_value=-900, max_value=900))
        def asanas_clock_drifts(self, offset):
            asana.control("set_clock_offset", seconds=offset)

        @rule(lag=st.sampled_from([0, 15, 60, 300]))
        def search_index_lags(self, lag):
            asana.control("set_search_lag", seconds=lag)

        @precondition(lambda self: bool(self.mine))
        @rule(data=st.data(), what=st.sampled_from(["rename", "retype", "move", "all"]))
        def a_person_edits_a_task(self, data, what):
            gid = data.draw(st.sampled_from(sorted(self.mine)))
            if asana.tasks.get(gid) is None:
                return
            if what in ("rename", "all"):
                asana.control("person_edit_task", gid=gid, name="renamed by the PM")
            if what in ("retype", "all"):
                asana.control("person_edit_task", gid=gid, custom_fields={F["erp_reference"]: "see PO 4471"})
            if what in ("move", "all"):
                asana.control("person_move_task", gid=gid, project=D["pr_project"])

        @precondition(
            lambda self: RecordLink.objects.filter(acumatica_ref=self.ref, state="needs_person").exists()
        )
        @rule()
        def a_person_resolves_the_parked_record(self):
            link = RecordLink.objects.get(acumatica_ref=self.ref)
            parked.resolve(link.pk, adopt_gid=link.review["candidates"][0]["gid"], actor="operator")

        # ---- the property --------------------------------------------------------------------------
        def open_mine(self) -> list[str]:
            return [g for g in self.mine if g in asana.tasks and not asana.tasks[g]["completed"]]

        @invariant()
        def at_most_one_open_task_per_document(self):
            assert len(self.open_mine()) <= 1, f"bill {self.ref}: open tasks {self.open_mine()}"

        def teardown(self):
            asana.faults.clear()
            for _ in range(8):  # a quiet phase: the retries come, a person answers what waits for one
                now.advance(1000)
                link = RecordLink.objects.filter(acumatica_ref=self.ref).first()
                if link is not None and link.state == RecordLink.State.NEEDS_PERSON:
                    parked.resolve(link.pk, adopt_gid=link.review["candidates"][0]["gid"], actor="operator")
                self.attempt()
            link = RecordLink.objects.get(acumatica_ref=self.ref)
            assert link.state == "linked", (link.state, link.state_reason)
            assert self.open_mine() == [link.asana_task_gid]

    return Creates


@pytest.mark.slow
def test_one_open_task_per_document_under_any_interleaving(make_sync, asana, acu, now, monkeypatch):
    run_machine(machine_for(make_sync, asana, acu, now, monkeypatch), steps=15)
