"""Replay: re-run one record's operation through the queue, after showing what it would write.

    preview(link, entry=None)  → Preview: the field diff of what would be written against the TARGET'S
                                 CURRENT state (read now, nothing written, no API-call rows), or why
                                 the replay cannot run
    enqueue(links, actor, …)   → a SyncRun with trigger "replay" and triggered_by = the operator; one
                                 django-q2 task per record (`run_replay`), so replays take the same
                                 locks, claims and reconciliation as any other pass
    run_replay(...)            the task: the handler re-runs the flow's own process function; every
                                 AuditEntry it writes carries actor = the operator and replay_of = the
                                 entry replayed (or the record's latest entry)

The decision is never re-implemented here: a handler per operation (or per flow kind, for a record)
adapts the flow's own plan/process functions. Each flow's replay.py holds its handler; the registry
(integrations/flows/registry.py) says which handler answers for which operations and flow kinds.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEntry, SyncRun
from audit.recorder import audit_context
from integrations.base import errors
from integrations.flows import registry
from integrations.flows.common.replay import Preview, ReplayHandler
from integrations.models import RecordLink

log = logging.getLogger(__name__)

TASK = "integrations.flows.replay.run_replay"


def handler_for(link: RecordLink, entry: AuditEntry | None = None) -> ReplayHandler | None:
    if entry is not None:
        handler = registry.replay_handler_for_operation(entry.operation)
        if handler is not None:
            return handler
    if link.flow_id and link.flow:
        return registry.replay_handler_for_kind(link.flow.kind)
    return None


def registered_operations() -> list[str]:
    return registry.replay_operations()


def preview(link: RecordLink, entry: AuditEntry | None = None) -> Preview:
    """What a replay would write now. Never raises a vendor error: it becomes a non-runnable preview."""
    handler = handler_for(link, entry)
    if handler is None:
        what = (
            f"operation {entry.operation!r}"
            if entry
            else f"a {link.flow.kind if link.flow else 'flowless'} record"
        )
        return Preview(link.pk, str(link), "none", runnable=False, reason=f"no replay handler for {what}")
    try:
        result = handler.preview(link, entry)
    except (errors.ConnectorError, errors.ConfigurationError) as exc:
        return Preview(
            link.pk, str(link), "error", runnable=False, reason=f"could not read: {exc}", handler=handler.name
        )
    except ObjectDoesNotExist as exc:  # the tenant lacks a connection the handler reads through
        return Preview(
            link.pk,
            str(link),
            "error",
            runnable=False,
            reason=f"the tenant {link.tenant.slug} lacks a connection this record needs ({exc}); "
            "add it on the tenant's page",
            handler=handler.name,
        )
    result.handler = handler.name
    return result


def target_of(entry: AuditEntry) -> RecordLink | None:
    return entry.record_link


def enqueue(
    items: list[tuple[RecordLink, AuditEntry | None]], *, actor: str, flow=None, message: str = ""
) -> SyncRun | None:
    """One replay run (trigger "replay", triggered_by the operator) and one queued task per record."""
    from django_q.tasks import async_task

    items = [(link, entry) for link, entry in items if handler_for(link, entry) is not None]
    if not items:
        return None
    first = items[0][0]
    run = SyncRun.objects.create(
        tenant=first.tenant,
        flow=flow
        if flow is not None
        else (first.flow if all(lk.flow_id == first.flow_id for lk, _ in items) else None),
        trigger=SyncRun.Trigger.REPLAY,
        triggered_by=actor,
        progress_total=len(items),
        message=message[:2000],
    )
    for link, entry in items:
        async_task(TASK, link.pk, entry.pk if entry else None, actor, run.pk)
    return run


def run_replay(link_id: int, entry_id: int | None, actor: str, run_id: int) -> str:
    """The django-q2 task: re-run one record through its flow's own code, as `actor`."""
    link = RecordLink.objects.select_related("flow", "tenant").filter(pk=link_id).first()
    run = SyncRun.objects.filter(pk=run_id).first()
    if link is None or run is None:
        return "record or run gone"
    entry = AuditEntry.objects.filter(pk=entry_id).first() if entry_id else None
    replay_of = entry or AuditEntry.objects.filter(record_link=link).order_by("-created_at", "-id").first()
    handler = handler_for(link, entry)
    outcome_key = "failed"
    try:
        if handler is None:
            raise errors.ConfigurationError(f"no replay handler for {link}")
        with audit_context(run=run, actor=actor, replay_of=replay_of, tenant_id=link.tenant_id):
            result = handler.execute(link, entry, actor=actor, run=run)
        outcome_key = "replayed"
    except errors.RetryableError as exc:
        result = f"will retry: {exc}"
        outcome_key = "retrying"
    except (errors.ConnectorError, errors.ConfigurationError) as exc:
        result = f"failed: {exc}"
    _count(run, outcome_key, f"{link}: {result}")
    return result


def _count(run: SyncRun, key: str, line: str) -> None:
    """Progress of the replay run; the last record to finish closes it."""
    from django.db import transaction

    with transaction.atomic():
        row = SyncRun.objects.select_for_update().get(pk=run.pk)
        counts = dict(row.counts or {})
        counts[key] = counts.get(key, 0) + 1
        row.counts = counts
        row.progress_done = F("progress_done") + 1
        row.message = (f"{row.message}\n{line}" if row.message else line)[-2000:]
        row.save(update_fields=["counts", "progress_done", "message"])
        row.refresh_from_db(fields=["progress_done"])
        if row.progress_total and row.progress_done >= row.progress_total:
            bad = counts.get("failed", 0) + counts.get("retrying", 0)
            row.status = SyncRun.Status.PARTIAL if bad else SyncRun.Status.SUCCEEDED
            if bad == row.progress_total:
                row.status = SyncRun.Status.FAILED
            row.finished_at = timezone.now()
            row.save(update_fields=["status", "finished_at"])
