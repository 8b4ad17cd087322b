"""Exactly one task whatever happens: 429 storms, a 5xx after Asana created the task, a crash between
the create and storing the GID, and two workers on the same bill at once."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from audit.models import AuditEntry
from integrations.base import errors
from integrations.flows.documents.sync import IN_FLIGHT, CreateInProgress, DocumentSync
from integrations.models import RecordLink

from .test_documents_support import *  # noqa: F403
from .test_documents_support import F, later, tasks_in_project


def _tasks_for(asana, key="Bill/000001"):
    return [g for g in tasks_in_project(asana) if asana.task_values(g).get(F["erp_reference"]) == key]


def _run_until_done(make_sync, attempts=10, **kwargs):
    for _ in range(attempts):
        try:
            return make_sync(**kwargs).process("Bill", "000001")
        except errors.RetryableError:
            continue
    raise AssertionError("never finished")


def test_a_429_storm_ends_with_exactly_one_task(make_sync, asana, now):
    asana.faults.add("status", method="POST", path="^/tasks$", status=429, retry_after=2, times=12)
    with pytest.raises(errors.RateLimited):
        make_sync().process("Bill", "000001")
    link = RecordLink.objects.get()
    assert link.state == "creating" and "retrying" in link.state_reason
    outcome = _run_until_done(make_sync)
    assert outcome.status == "succeeded"
    assert len(_tasks_for(asana)) == 1
    assert AuditEntry.objects.filter(status="retrying").exists()
    assert RecordLink.objects.get().state == "linked"


def test_a_5xx_after_asana_created_the_task_is_reconciled_not_recreated(make_sync, asana):
    asana.faults.add("drop_after_write", method="POST", path="^/tasks$")
    outcome = make_sync().process("Bill", "000001")
    tasks = _tasks_for(asana)
    assert len(tasks) == 1
    link = RecordLink.objects.get()
    assert (link.state, link.asana_task_gid) == ("linked", tasks[0])
    assert "adopted task" in " ".join(outcome.notes)
    assert len([r for r in asana.requests if r.method == "POST" and r.path == "/tasks"]) == 1


def test_a_500_before_anything_was_created_creates_after_reconciling(make_sync, asana, now):
    asana.faults.add("status", method="POST", path="^/tasks$", status=500, times=1)
    with pytest.raises(errors.RetryableError):
        make_sync().process("Bill", "000001")
    assert _tasks_for(asana) == []
    assert RecordLink.objects.get().attempt_started_at is not None
    with pytest.raises(errors.RetryableError):  # not found yet is only "unknown": the index may lag
        make_sync().process("Bill", "000001")
    now.advance(300)  # past the lease and the search index's lag: nothing there, so create
    make_sync().process("Bill", "000001")
    assert len(_tasks_for(asana)) == 1


def test_a_crash_between_create_and_storing_the_gid_ends_with_one_task(make_sync, asana, now, monkeypatch):
    def crash(self, *args, **kwargs):
        raise RuntimeError("worker killed after the create")

    with monkeypatch.context() as m:
        m.setattr(DocumentSync, "store_created", crash)
        with pytest.raises(RuntimeError):
            make_sync().process("Bill", "000001")
    assert len(_tasks_for(asana)) == 1
    link = RecordLink.objects.get()
    assert (link.state, link.state_reason, link.asana_task_gid) == ("creating", IN_FLIGHT, "")

    # Within the lease another worker may still be creating: leave it alone.
    with pytest.raises(CreateInProgress):
        make_sync().process("Bill", "000001")
    assert RecordLink.objects.get().state_reason == IN_FLIGHT

    now.advance(600)
    outcome = make_sync().process("Bill", "000001")
    tasks = _tasks_for(asana)
    assert len(tasks) == 1
    link.refresh_from_db()
    assert (link.state, link.asana_task_gid) == ("linked", tasks[0])
    assert "is ours (identity line in the notes)" in " ".join(outcome.notes)


def test_sqlite_serialises_writers_with_immediate_transactions(settings):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    assert settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_postgresql_create_one_task(make_sync, asana):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are a PostgreSQL matter; SQLite serialises writers (IMMEDIATE)")
    asana.faults.add("latency", method="POST", path="^/tasks$", delay=0.3, times=2)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def worker():
        try:
            sync = make_sync()
            barrier.wait()
            results.append(sync.process("Bill", "000001"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(_tasks_for(asana)) == 1, results
    assert len([r for r in asana.requests if r.method == "POST" and r.path == "/tasks"]) == 1
    assert RecordLink.objects.count() == 1
    kinds = sorted(type(r).__name__ for r in results)
    assert kinds in (["CreateInProgress", "Outcome"], ["Outcome", "Outcome"]), results


def test_a_document_retry_that_fails_again_schedules_the_next_one(bills_flow, monkeypatch):
    """django-q2 keeps a ONCE schedule after it fired (repeats=0): the retry that failed again must not
    take it for one still pending, or the document would wait for the next poll pass (a push-only
    change: forever)."""
    from django.utils import timezone
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from integrations.flows.documents import tasks as document_tasks

    attempts: list[str] = []

    def record_locked(self, doc_type, number, **kwargs):
        attempts.append(number)
        raise errors.Locked(f"{doc_type} {number} is locked by another user", system="acumatica")

    monkeypatch.setattr(DocumentSync, "process", record_locked)
    assert document_tasks.process_document(bills_flow.pk, "Bill", "000001").startswith("retrying")
    pending = Schedule.objects.filter(name=f"retry:{bills_flow.pk}:Bill/000001").exclude(repeats=0)
    for _ in range(2):  # the retry fires (sync mode: its task runs at once) and meets the lock again
        pending.update(next_run=timezone.now() - later(1))
        scheduler(broker=object())
        assert pending.count() == 1 and pending.get().next_run > timezone.now()
    assert attempts == ["000001"] * 3
