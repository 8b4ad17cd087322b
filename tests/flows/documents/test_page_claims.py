"""Per page, not per row (issue 17): a poll page's new documents are claimed a few at a time in one
INSERT and each
created task is stored by one fenced UPDATE with its audit rows — and exactly once still holds when
another worker is on the same page, when a pass stops mid-page, and when the rate budget makes the
page's last create come long after its claim."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import ApiCall, AuditEntry
from integrations.flows.documents import batch as page_claims
from integrations.flows.documents.poll import poll
from integrations.flows.documents.sync import IN_FLIGHT, CreateInProgress, DocumentSync
from integrations.models import GuardedWrite, RecordLink

from .test_documents_support import *  # noqa: F403
from .test_documents_support import F, tasks_in_project

NEW_BILLS = 20


def _add_bills(acu, count: int = NEW_BILLS) -> list[str]:
    refs = []
    for i in range(count):
        bill = acu.add_bill("V-ACME", 1000 + i, due_date=date(2026, 4, 1), vendor_ref=f"INV-P{i:03d}")
        refs.append(bill["ReferenceNbr"])
    return refs


def _tasks_by_key(asana) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for gid in tasks_in_project(asana):
        key = asana.task_values(gid).get(F["erp_reference"])
        out.setdefault(key, []).append(gid)
    return out


def _assert_each_linked_to_one_task(asana) -> None:
    by_key = _tasks_by_key(asana)
    assert all(len(gids) == 1 for gids in by_key.values()), {k: v for k, v in by_key.items() if len(v) > 1}
    for link in RecordLink.objects.filter(state="linked"):
        assert by_key[f"{link.acumatica_type}/{link.acumatica_ref}"] == [link.asana_task_gid]


def test_a_page_of_new_bills_is_claimed_in_one_insert_and_each_created_once(make_sync, asana, acu):
    _add_bills(acu)
    with CaptureQueriesContext(connection) as ctx:
        result = poll(make_sync())
    created = result.counts["created"]
    assert created >= NEW_BILLS
    sql = [q["sql"] for q in ctx.captured_queries]
    link_inserts = [q for q in sql if q.startswith('INSERT INTO "integrations_recordlink"')]
    # one INSERT claims the next CLAIM_AHEAD new documents (+1: the bill that cannot be written)
    assert len(link_inserts) <= -(-created // page_claims.CLAIM_AHEAD) + 1, len(link_inserts)
    per_record = [
        q
        for q in sql
        if q.split(None, 1)[0] in ("SELECT", "INSERT", "UPDATE", "DELETE")
        and any(
            t in q for t in ('"integrations_recordlink"', '"audit_auditentry"', '"integrations_guardedwrite"')
        )
    ]
    # a new bill: its fenced UPDATE, its AuditEntry, its GuardedWrite; the page: its links read, its
    # claims, its API-call rows (the pass's own set-up, cursor and run rows are counted apart)
    refused = result.counts["quarantined"]  # a bill the flow cannot write goes row by row (4 statements)
    assert len(per_record) <= 3 * created + 4 * refused + 3 * result.pages + 2, len(per_record)
    api_rows = [q for q in sql if q.startswith('INSERT INTO "audit_apicall"')]
    assert len(api_rows) <= 2 * result.pages + 3  # a page's rows in one INSERT (+ the pass's reads)
    _assert_each_linked_to_one_task(asana)
    linked = RecordLink.objects.filter(state="linked")
    assert linked.count() == created
    for link in linked:
        assert link.guarded_values and link.guarded_written_at and link.claim_token == 1
        assert link.attempt_started_at is None and link.state_reason == ""
        entries = AuditEntry.objects.filter(record_link=link, operation="create_task")
        assert [e.status for e in entries] == ["succeeded"]
        assert GuardedWrite.objects.filter(link=link, operation="create").count() == 1
    # every POST /tasks has its API-call row, tied to its document (written once per page)
    posts = ApiCall.objects.filter(system="asana", method="POST", url__endswith="/tasks")
    assert posts.count() == created
    assert set(posts.values_list("record_link_id", flat=True)) == set(linked.values_list("pk", flat=True))


def test_a_worker_on_the_same_page_sends_the_page_row_by_row_and_nothing_is_doubled(
    make_sync, asana, acu, monkeypatch
):
    refs = _add_bills(acu, 5)
    original = DocumentSync.current_links

    def links_then_a_push(self, keys):
        links = original(self, keys)  # read before the other worker's create: stale for refs[2]
        make_sync().process("Bill", refs[2])  # a push for one bill of the page, handled meanwhile
        return links

    monkeypatch.setattr(DocumentSync, "current_links", links_then_a_push)
    poll(make_sync())
    monkeypatch.setattr(DocumentSync, "current_links", original)
    _assert_each_linked_to_one_task(asana)
    assert RecordLink.objects.filter(acumatica_ref__in=refs, state="linked").count() == 5
    assert RecordLink.objects.filter(acumatica_ref=refs[2]).count() == 1


def test_a_pass_that_stops_mid_page_releases_the_claims_it_never_acted_on(
    make_sync, asana, acu, now, monkeypatch
):
    _add_bills(acu, 6)
    original = DocumentSync._create
    calls = []

    def dies_on_the_third(self, *args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise RuntimeError("the worker's database connection was lost")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DocumentSync, "_create", dies_on_the_third)
    with pytest.raises(RuntimeError):
        poll(make_sync())
    monkeypatch.setattr(DocumentSync, "_create", original)
    stopped_at = calls[2].split("/")[1]
    released = RecordLink.objects.filter(state_reason__startswith="claim released")
    assert released.exists() and all(link.attempt_started_at is None for link in released)
    # the one that was being created keeps its claim (its POST may have been sent): the lease decides
    assert RecordLink.objects.get(acumatica_ref=stopped_at).state_reason == IN_FLIGHT

    # The next pass, at once: every released document is created without waiting out any lease.
    second = poll(make_sync())
    assert second.counts["retrying"] == 1  # only the one in flight
    assert all(link.state == "linked" for link in RecordLink.objects.filter(pk__in=released))
    now.advance(600)  # past the lease and the search index's lag
    poll(make_sync())
    _assert_each_linked_to_one_task(asana)
    assert RecordLink.objects.get(acumatica_ref=stopped_at).state == "linked"


def test_an_ageing_page_renews_its_waiting_claims_so_no_other_worker_takes_them(
    make_sync, asana, acu, now, monkeypatch
):
    refs = _add_bills(acu, 8)
    lease = DocumentSync(make_sync().flow).lease.total_seconds()
    original = DocumentSync._create
    seen: list[tuple[str, type]] = []

    def slow_budget(self, *args, **kwargs):
        now.advance(lease * 0.5)  # the shared budget paces creates: each waits half the lease
        waiting = RecordLink.objects.filter(state_reason=IN_FLIGHT, asana_task_gid="").exclude(
            acumatica_ref=args[1].split("/")[1]
        )
        if len(seen) == 0 and self._create_calls >= 3 and waiting.exists():
            other = waiting.first()  # a claim of the page still waiting, 1.5 leases after its claim
            try:  # another worker (a push) on it
                make_sync().process(other.acumatica_type, other.acumatica_ref)
            except CreateInProgress:
                seen.append((other.acumatica_ref, CreateInProgress))
            else:
                seen.append((other.acumatica_ref, type(None)))
        self._create_calls += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DocumentSync, "_create_calls", 0, raising=False)
    monkeypatch.setattr(DocumentSync, "_create", slow_budget)
    poll(make_sync())
    monkeypatch.setattr(DocumentSync, "_create", original)
    assert [kind for _ref, kind in seen] == [CreateInProgress], "a live page's waiting claim was taken"
    _assert_each_linked_to_one_task(asana)
    assert RecordLink.objects.filter(acumatica_ref__in=refs, state="linked").count() == len(refs)
    closed = [g for g, t in asana.tasks.items() if t.get("completed")]
    assert closed == [], "no orphan task was made and closed"


def test_keep_fresh_hands_back_a_claim_taken_over_meanwhile(make_sync, acu, now):
    _add_bills(acu, 3)
    sync = make_sync()
    sync.refresh_specs()
    records = list(sync.acumatica.iter_bills(page_size=100))
    claims = page_claims.claim_new(sync, records, {})
    assert len(claims) == len(records) - 1  # all but the bill whose status maps to a disabled option
    first, *waiting = claims.values()
    taken = waiting[0][0]
    RecordLink.objects.filter(pk=taken.pk).update(claim_token=2)  # another worker's takeover
    now.advance(sync.lease.total_seconds())
    assert page_claims.keep_fresh(sync, first, waiting) is True
    assert page_claims.keep_fresh(sync, waiting[0], waiting[1:]) is False
    fresh = RecordLink.objects.get(pk=first[0].pk)
    assert fresh.attempt_started_at == now.dt()
