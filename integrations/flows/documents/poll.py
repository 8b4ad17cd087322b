"""The change feed for bills / purchase orders: poll `LastModifiedDateTime` with a UTC watermark.

    since = watermark − overlap (Flow.options.overlap_minutes, default 5), or --since, or nothing
            (a backfill); `$filter=LastModifiedDateTime gt datetimeoffset'…'` plus the flow's status
            filter (the closing statuses are added so a voided bill is seen); `$select` of the header
            fields the mappings and templates use — never `Details` (reference/acumatica.md §8.4).
    pages   `$top/$skip`, one page in memory; each record goes through DocumentSync.process with the
            page's copy (no re-read: one Acumatica read per page of changes). An unchanged record
            costs no Asana call (payload hash).
    cursor  Acumatica documents no ordering for paged lists (§4.2: no $orderby, ordering UNVERIFIED),
            so the watermark can never safely move to "the newest record of this page": a later page
            may hold older records. After each page the progress (records done, newest seen) is
            stored under `pass`; the watermark itself moves only when every page has been processed,
            to min(newest seen, pass start). A pass that dies restarts from the same `since` — records
            already done cost a read and no write.
Push notifications only accelerate this; polling stays on as the catch-up (§7.4).
"""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from audit.models import SyncRun
from audit.recorder import buffered_api_calls
from integrations.acumatica.documents import BILL_LIST_FIELDS, PO_LIST_FIELDS
from integrations.base import errors
from integrations.flows.documents import batch as page_claims
from integrations.flows.documents.sync import CreateInProgress, DocumentSync, Outcome, _parse_dt
from integrations.models import Cursor

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(minutes=5)
COUNT_KEYS = ("created", "updated", "unchanged", "skipped", "quarantined", "closed", "failed", "retrying")
# Per-record retryable errors: the pass goes on and the record is retried on its own.
RECORD_RETRYABLE = (CreateInProgress, errors.Locked)


@dataclass
class PassResult:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNT_KEYS, 0))
    plans: list[Any] = field(default_factory=list)  # dry run: every plan; otherwise empty
    run: SyncRun | None = None
    pages: int = 0
    since: datetime | None = None
    watermark: datetime | None = None


def stream_name(sync: DocumentSync) -> str:
    return f"flow:{sync.flow.pk}:{sync.doc.entity}:LastModifiedDateTime"


def _load(sync: DocumentSync) -> tuple[Cursor | None, dict[str, Any]]:
    cursor = Cursor.objects.filter(tenant=sync.tenant, stream=stream_name(sync)).first()
    try:
        state = json.loads(cursor.value) if cursor and cursor.value else {}
    except ValueError:
        state = {}
    return cursor, state if isinstance(state, dict) else {}


def _save(sync: DocumentSync, state: dict[str, Any]) -> None:
    Cursor.objects.update_or_create(
        tenant=sync.tenant, stream=stream_name(sync), defaults={"value": json.dumps(state)}
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def select_fields(sync: DocumentSync) -> list[str]:
    """The header fields a pass needs: keys, status, timestamps, mapped paths and template fields."""
    base = BILL_LIST_FIELDS if sync.doc.entity == "Bill" else PO_LIST_FIELDS
    wanted = set(base)
    for mapping in sync.settings.mappings:
        if not mapping.source_path.startswith("custom/"):
            wanted.add(mapping.source_path.split("/")[0])
    for template in (sync.settings.name_template, sync.settings.notes_template, sync.doc.default_name):
        wanted.update(name for _t, name, _s, _c in string.Formatter().parse(template or "") if name)
    wanted.discard("Details")
    return sorted(wanted)


def _count(result: PassResult, outcome: Outcome) -> None:
    plan = outcome.plan
    if outcome.status == "failed":
        key = "failed"
    elif plan.action in ("create", "update", "close", "quarantine"):
        key = {"create": "created", "update": "updated", "close": "closed"}.get(plan.action, "quarantined")
    else:
        key = "unchanged" if plan.reason == "unchanged" else "skipped"
    result.counts[key] += 1


def poll(
    sync: DocumentSync,
    *,
    since: datetime | None = None,
    trigger: str = SyncRun.Trigger.SCHEDULE,
    triggered_by: str = "",
    progress: Callable[[PassResult], None] | None = None,
    retry_record: Callable[[str, str, float], None] | None = None,
) -> PassResult:
    """One pass over the documents changed since the watermark. Dry runs write nothing anywhere."""
    options = sync.flow.options or {}
    overlap = timedelta(minutes=float(options.get("overlap_minutes", DEFAULT_OVERLAP.total_seconds() / 60)))
    page_size = int(options.get("page_size", 100))
    _cursor, state = _load(sync)
    watermark = _parse_dt(state.get("watermark"))
    pending = state.get("pass") or {}
    start = since or _parse_dt(pending.get("since")) or (watermark - overlap if watermark else None)
    result = PassResult(since=start, watermark=watermark)
    pass_started = sync.now()
    if not sync.dry_run:
        result.run = SyncRun.objects.create(
            tenant=sync.tenant, flow=sync.flow, trigger=trigger, triggered_by=triggered_by
        )
        sync.run = result.run
    statuses = None
    if sync.settings.status_filter:
        statuses = sorted(set(sync.settings.status_filter) | set(sync.doc.closed_statuses))
    lister = sync.acumatica.iter_bills if sync.doc.entity == "Bill" else sync.acumatica.iter_purchase_orders
    newest: datetime | None = _parse_dt(pending.get("max_seen")) if not since else None
    done = 0
    # The field definitions are read once per pass, fresh; drift is recorded before the first page.
    try:
        specs = sync.refresh_specs()
    except errors.ConnectorError:
        if not sync.dry_run:
            _finish(result, SyncRun.Status.FAILED, "could not read the project's custom fields")
            raise
        specs = None
    if specs is not None and not sync.dry_run:
        from mappings.drift import check_flow

        report = check_flow(sync.flow, sync.asana, specs=specs)
        if report.renamed or report.broken:
            log.info("flow %s mapping drift: %s", sync.flow, report.summary())
    try:
        batch: list[Any] = []
        for record in lister(
            modified_since=start, status_in=statuses, select=select_fields(sync), page_size=page_size
        ):
            batch.append(record)
            if len(batch) == page_size:
                newest, done = _page(sync, batch, result, newest, done, retry_record)
                batch = []
                _after_page(sync, result, state, start, newest, done, progress)
        if batch:
            newest, done = _page(sync, batch, result, newest, done, retry_record)
            _after_page(sync, result, state, start, newest, done, progress)
    except errors.RetryableError as exc:
        _finish(result, SyncRun.Status.FAILED, f"stopped, will retry: {exc}")
        raise
    except Exception as exc:
        _finish(result, SyncRun.Status.FAILED, f"stopped: {exc}")
        raise
    if not sync.dry_run:
        moved = min(newest, pass_started) if newest else None
        if watermark and (moved is None or moved < watermark):
            moved = watermark  # never backwards (a --since pass over older records)
        result.watermark = moved
        _save(sync, {"watermark": _iso(moved), "pass": None})
    bad = result.counts["failed"] + result.counts["quarantined"] + result.counts["retrying"]
    _finish(result, SyncRun.Status.PARTIAL if bad else SyncRun.Status.SUCCEEDED, "")
    return result


def _page(
    sync: DocumentSync,
    batch: list[Any],
    result: PassResult,
    newest: datetime | None,
    done: int,
    retry_record: Callable[[str, str, float], None] | None,
) -> tuple[datetime | None, int]:
    with buffered_api_calls(enabled=not sync.dry_run):  # the page's API-call rows: one INSERT at its end
        return _page_records(sync, batch, result, newest, done, retry_record)


def _page_records(
    sync: DocumentSync,
    batch: list[Any],
    result: PassResult,
    newest: datetime | None,
    done: int,
    retry_record: Callable[[str, str, float], None] | None,
) -> tuple[datetime | None, int]:
    number_field = sync.doc.number_field
    links = sync.current_links([(str(r.get("Type")), str(r.get(number_field))) for r in batch])
    claims: dict[tuple[str, str], page_claims.Claim] = {}
    unstarted: dict[tuple[str, str], page_claims.Claim] = {}  # claimed, create not begun (filled as it goes)
    try:
        return _records(sync, batch, result, newest, done, retry_record, links, claims, unstarted)
    except Exception:
        # A pass stopped mid-page (a crash in one record, a lost database): the claims it never acted
        # on made no POST, so they are released for the next attempt, which creates without waiting
        # out the lease or reconciling. (A worker killed outright leaves them to the lease, as ever.)
        try:
            page_claims.release_unstarted(unstarted.values())
        except Exception:  # noqa: BLE001 - the database itself may be what failed: the lease decides
            log.warning("could not release %d unstarted claim(s); they wait out the lease", len(unstarted))
        raise


def _records(
    sync: DocumentSync,
    batch: list[Any],
    result: PassResult,
    newest: datetime | None,
    done: int,
    retry_record: Callable[[str, str, float], None] | None,
    links: dict[tuple[str, str], Any],
    claims: dict[tuple[str, str], page_claims.Claim],
    unstarted: dict[tuple[str, str], page_claims.Claim],
) -> tuple[datetime | None, int]:
    number_field = sync.doc.number_field
    for at, record in enumerate(batch):
        if at % page_claims.CLAIM_AHEAD == 0:  # the next few new documents, claimed in one INSERT
            try:
                ahead = page_claims.claim_new(sync, batch[at : at + page_claims.CLAIM_AHEAD], links)
            except errors.ConnectorError:
                ahead = {}  # Asana's clock or fields unreadable now: each document meets it on its own
            claims.update(ahead)
            unstarted.update(ahead)
        doc_type, number = str(record.get("Type")), str(record.get(number_field))
        claim = claims.get((doc_type, number))
        unstarted.pop((doc_type, number), None)
        if claim is not None and not page_claims.keep_fresh(sync, claim, unstarted.values()):
            claim = None  # no longer ours (another worker took it over): row by row decides
        try:
            outcome = sync.process(
                doc_type, number, record=record, link=links.get((doc_type, number)), claim=claim
            )
        except RECORD_RETRYABLE as exc:
            result.counts["retrying"] += 1
            if retry_record and not sync.dry_run:
                retry_record(doc_type, number, exc.retry_after or 30.0)
        else:
            _count(result, outcome)
            if sync.dry_run:
                result.plans.append(outcome.plan)
        modified = _parse_dt(record.get("LastModifiedDateTime"))
        if modified and (newest is None or modified > newest):
            newest = modified
        done += 1
    result.pages += 1
    return newest, done


def _after_page(
    sync: DocumentSync,
    result: PassResult,
    state: dict[str, Any],
    start: datetime | None,
    newest: datetime | None,
    done: int,
    progress: Callable[[PassResult], None] | None,
) -> None:
    if not sync.dry_run:
        _save(sync, {**state, "pass": {"since": _iso(start), "max_seen": _iso(newest), "done": done}})
        SyncRun.objects.filter(pk=result.run.pk).update(progress_done=done, counts=result.counts)
    if progress:
        progress(result)


def _finish(result: PassResult, status: str, message: str) -> None:
    if result.run is None:
        return
    SyncRun.objects.filter(pk=result.run.pk).update(
        status=status,
        counts=result.counts,
        finished_at=timezone.now(),
        message=message[:2000],
        progress_done=sum(result.counts.values()),
    )
    result.run.refresh_from_db()
