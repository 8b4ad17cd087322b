"""Polling with a watermark, `connector sync` and its dry run."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from audit.models import ApiCall, AuditEntry, SyncRun
from integrations.flows.documents.poll import poll
from integrations.models import Cursor, RecordLink

from .test_documents_support import *  # noqa: F403
from .test_documents_support import F, tasks_in_project, writes


def test_a_pass_creates_tasks_quarantines_the_bad_one_and_moves_the_watermark(make_sync, asana, acu):
    result = poll(make_sync())
    # 000002 is On Hold, mapped to an option that is disabled in Asana: only it is held back.
    assert result.counts["created"] == 4 and result.counts["quarantined"] == 1, result.counts
    assert len(tasks_in_project(asana)) == 4
    held = RecordLink.objects.get(acumatica_ref="000002")
    assert held.state == "quarantined" and "disabled" in held.state_reason
    run = SyncRun.objects.get()
    assert run.status == "partial" and run.counts["created"] == 4 and run.finished_at
    state = json.loads(Cursor.objects.get().value)
    assert state["pass"] is None and state["watermark"]
    # one Acumatica list read for the page; no per-document re-read
    list_reads = [r for r in acu.request_log if r[0] == "GET" and r[1].endswith("/Bill")]
    by_key = [r for r in acu.request_log if r[0] == "GET" and "/Bill/" in r[1]]
    assert len(list_reads) == 1 and by_key == []


def test_an_unchanged_poll_makes_no_asana_write_and_a_change_is_picked_up(make_sync, asana, acu, now):
    poll(make_sync())
    seen = len(asana.requests)
    second = poll(make_sync())
    assert writes(asana, seen) == []
    assert second.counts["created"] == 0 and second.counts["updated"] == 0

    now.advance(600)
    acu.update_record("Bill", ("Bill", "000004"), Amount=4000.0)
    third = poll(make_sync())
    assert third.counts["updated"] == 1
    assert writes(asana, seen) == [("PUT", writes(asana, seen)[0][1])]


def test_the_status_filter_and_since_narrow_the_query(make_sync, acu, bills_flow):
    bills_flow.status_filter = ["Pending Approval"]
    bills_flow.save()
    result = poll(make_sync())
    assert result.counts["created"] == 1
    listed = [r for r in acu.request_log if r[0] == "GET" and r[1].endswith("/Bill")]
    assert listed


def test_dry_run_prints_the_plan_and_writes_nothing(make_sync, asana, capsys, mounted):
    make_sync().process("Bill", "000001")
    before = (RecordLink.objects.count(), AuditEntry.objects.count(), ApiCall.objects.count())
    seen = len(asana.requests)
    result = poll(make_sync(dry_run=True))
    assert sorted(p.action for p in result.plans) == ["create", "create", "create", "quarantine", "skip"]
    assert writes(asana, seen) == []
    after = (RecordLink.objects.count(), AuditEntry.objects.count(), ApiCall.objects.count())
    assert before == after
    assert not SyncRun.objects.exists() and not Cursor.objects.exists()


def test_connector_sync_command(bills_flow, mounted, asana, capsys):
    call_command("connector", "sync", "--tenant", "ridgeline", "--flow", "AP bills", "--dry-run")
    out = capsys.readouterr().out
    assert "create     Bill/000001" in out and "Plan (nothing was written)" in out
    assert not RecordLink.objects.exists() and tasks_in_project(asana) == {}

    call_command("connector", "sync", "--tenant", "ridgeline", "--flow", "AP bills")
    out = capsys.readouterr().out
    assert "page 1" in out and "created 4" in out
    assert len(tasks_in_project(asana)) == 4
    assert AuditEntry.objects.filter(status="succeeded").count() == 4
    values = [asana.task_values(g)[F["erp_reference"]] for g in tasks_in_project(asana)]
    assert sorted(values) == ["Bill/000001", "Bill/000003", "Bill/000004", "Credit Adj./000005"]


def test_connector_sync_refuses_an_unknown_flow(bills_flow):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        call_command("connector", "sync", "--tenant", "ridgeline", "--flow", "nope")


def test_a_voided_bill_follows_the_flows_choice(make_sync, asana, acu, bills_flow, now):
    from .test_documents_support import D

    bills_flow.options = {"on_source_closed": "section", "closed_section_gid": D["ap_sections"]["rejected"]}
    bills_flow.save()
    make_sync().process("Bill", "000001")
    gid = RecordLink.objects.get(acumatica_ref="000001").asana_task_gid
    now.advance(60)
    acu.update_record("Bill", ("Bill", "000001"), Status="Voided")
    result = poll(make_sync())
    assert result.counts["closed"] == 1
    assert asana.tasks[gid]["sections"][D["ap_project"]] == D["ap_sections"]["rejected"]
    link = RecordLink.objects.get(acumatica_ref="000001")
    assert link.state == "closed" and "voided" in link.state_reason
    entry = AuditEntry.objects.get(operation="close_task")
    assert entry.payload == {"how": "section", "reason": "voided in Acumatica"}
    seen = len(asana.requests)
    poll(make_sync())  # already closed: nothing more
    assert writes(asana, seen) == []


def test_the_drift_check_task_reports_a_rate_limit_instead_of_crashing(bills_flow, mounted, asana):
    from integrations.flows.documents.tasks import check_drift

    asana.faults.add("status", method="GET", status=429, retry_after=90, times=20)
    assert check_drift(bills_flow.pk).startswith("drift check not run")
    asana.faults.clear()
    assert "mapping(s) checked" in check_drift(bills_flow.pk)


def test_an_unchanged_pass_writes_no_audit_row_and_its_run_counts_the_documents(make_sync):
    first = poll(make_sync())
    rows = AuditEntry.objects.exclude(status="quarantined").count()
    second = poll(make_sync())  # every document re-read in the overlap window, none changed
    assert second.counts["unchanged"] == first.counts["created"] > 0
    # (a document that cannot be written is refused again, with its reason: that row stays)
    assert AuditEntry.objects.exclude(status="quarantined").count() == rows
    run = SyncRun.objects.latest("pk")
    assert run.counts["unchanged"] == second.counts["unchanged"]


def test_an_unchanged_document_takes_no_lock_and_writes_no_row(make_sync):
    """Per page, not per row: the page's links are read in one query, and a document re-read at the
    version its task already shows costs no transaction, no row lock and no write of any kind."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = poll(make_sync())
    held = RecordLink.objects.get(state="quarantined")  # refused again each pass, with its reason
    links_before = {link.pk: link.updated_at for link in RecordLink.objects.exclude(pk=held.pk)}
    with CaptureQueriesContext(connection) as ctx:
        second = poll(make_sync())
    assert second.counts["unchanged"] == first.counts["created"] == 4
    sql = [q["sql"] for q in ctx.captured_queries]
    link_reads = [q for q in sql if q.startswith("SELECT") and '"integrations_recordlink"' in q]
    link_writes = [
        q
        for q in sql
        if not q.startswith("SELECT")
        and "integrations_recordlink" in q
        and not q.endswith(f'"integrations_recordlink"."id" = {held.pk}')
    ]
    audit_writes = [q for q in sql if q.startswith("INSERT") and "audit_auditentry" in q]
    # (PostgreSQL also locks the pass's cursor row, update_or_create: that is the pass, not a document)
    locks = [q for q in sql if "FOR UPDATE" in q and q.startswith('SELECT "integrations_recordlink"')]
    assert link_writes == [] and len(locks) <= 1  # the held document's lock only
    # one query for the page's links; the quarantined document is refused again with its reason
    assert len(link_reads) <= 2, link_reads
    assert len(audit_writes) == first.counts["quarantined"] == 1
    assert {link.pk: link.updated_at for link in RecordLink.objects.exclude(pk=held.pk)} == links_before


def test_a_document_changed_in_acumatica_after_its_last_sync_takes_the_locked_path(
    make_sync, asana, acu, now
):
    """The fast path is for the version already written only: a newer LastModifiedDateTime with the same
    mapped values still goes through the lock (and records the new version), never skipped unseen."""
    poll(make_sync())
    before = RecordLink.objects.get(acumatica_ref="000004").source_modified_at
    seen = len(asana.requests)
    now.advance(600)
    acu.update_record("Bill", ("Bill", "000004"), Description="a field no mapping reads")
    result = poll(make_sync())
    assert result.counts["unchanged"] == 4 and writes(asana, seen) == []
    assert RecordLink.objects.get(acumatica_ref="000004").source_modified_at > before
