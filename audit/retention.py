"""Retention of the audit trail: every audit table has a period per kind of row, purged by a schedule.

Periods come from `settings.AUDIT_RETENTION_DAYS` (each overridable as `RETENTION_<KIND>_DAYS`). The
defaults keep what an auditor asks for and drop what only debugging needs:

    kind              rows                                                  default
    effects           audit entries that changed something or failed        7 years (2557 days)
                      (succeeded, failed, quarantined, retrying)
    no_ops            audit entries that record nothing happening           1 year
                      (unchanged, skipped, planned by a dry run)
    sync_runs         sync runs (their counts summarise the effects)        7 years
    api_calls         API calls: URLs and request/response excerpts         90 days
    inbound_bodies    the raw body and headers of an inbound event          90 days (the row stays)
    inbound_events    inbound events that were acted on or failed           7 years
    inbound_noise     ignored, duplicate, rejected and unreadable events     1 year
    alerts            resolved alerts                                       7 years

A record's lineage (console/lineage.py) is built from its audit entries, so its effects outlive the
purge of the API calls made for them; a purged inbound event leaves its audit entries pointing at
nothing (SET NULL), never deletes them.

The purge runs in batches of `batch_size` primary keys, each batch its own short transaction (a
DELETE or UPDATE by primary key, the SET NULL references set first, no row loaded into Python), and
rests between batches so that it takes at most `share` of the time (default a quarter: a batch that
took 40 ms is followed by 120 ms of rest), so other writers are never held behind a long lock and the
requests served meanwhile keep their pace; a run stops after `max_batches` per kind and the next run
carries on. Each run is
audited: one `retention.purge` entry per tenant whose rows it removed, with the counts and cut-offs
(an effect, so it is kept 7 years); rows of no tenant are counted in the task's result and the log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .models import Alert, ApiCall, AuditEntry, InboundEvent, SyncRun

log = logging.getLogger(__name__)

SEVEN_YEARS = 2557
DEFAULT_DAYS: dict[str, int] = {
    "effects": SEVEN_YEARS,
    "no_ops": 365,
    "sync_runs": SEVEN_YEARS,
    "api_calls": 90,
    "inbound_bodies": 90,
    "inbound_events": SEVEN_YEARS,
    "inbound_noise": 365,
    "alerts": SEVEN_YEARS,
}
NO_OP_STATUSES = (AuditEntry.Status.UNCHANGED, AuditEntry.Status.SKIPPED, AuditEntry.Status.PLANNED)
NOISE_STATUSES = (
    InboundEvent.Status.IGNORED,
    InboundEvent.Status.DUPLICATE,
    InboundEvent.Status.REJECTED,
    InboundEvent.Status.UNREADABLE,
)
WAITING_STATUSES = (InboundEvent.Status.RECEIVED, InboundEvent.Status.QUEUED)


@dataclass(frozen=True)
class Kind:
    name: str
    model: type[models.Model]
    date_field: str
    only: Q  # which rows of the table this kind covers
    clear: dict[str, Any] | None = None  # None: delete the rows; else: UPDATE these fields

    def expired(self, cutoff: datetime) -> models.QuerySet:
        # The base QuerySet: AuditEntry's and ApiCall's managers refuse delete() for everyone else.
        rows = models.QuerySet(self.model).filter(self.only, **{f"{self.date_field}__lt": cutoff})
        if self.clear is not None:
            rows = rows.exclude(raw_body=b"")
        return rows.order_by("pk")


KINDS: tuple[Kind, ...] = (
    Kind("api_calls", ApiCall, "started_at", Q()),
    Kind("no_ops", AuditEntry, "created_at", Q(status__in=NO_OP_STATUSES)),
    Kind("effects", AuditEntry, "created_at", ~Q(status__in=NO_OP_STATUSES)),
    # The events' deletions come before their bodies are cleared: a row about to be deleted is not
    # first rewritten without its body (an UPDATE is a new row version: double the work, and bloat).
    Kind("inbound_noise", InboundEvent, "received_at", Q(status__in=NOISE_STATUSES)),
    # A row still waiting for its worker is never purged, however old.
    Kind(
        "inbound_events",
        InboundEvent,
        "received_at",
        ~Q(status__in=NOISE_STATUSES) & ~Q(status__in=WAITING_STATUSES),
    ),
    Kind(
        "inbound_bodies",
        InboundEvent,
        "received_at",
        ~Q(status__in=WAITING_STATUSES),
        clear={"raw_body": b"", "headers": {}},
    ),
    Kind("sync_runs", SyncRun, "started_at", ~Q(status=SyncRun.Status.RUNNING)),
    Kind("alerts", Alert, "last_raised_at", Q(resolved_at__isnull=False)),
)


def retention_days() -> dict[str, int]:
    configured = getattr(settings, "AUDIT_RETENTION_DAYS", {}) or {}
    return {name: int(configured.get(name, default)) for name, default in DEFAULT_DAYS.items()}


def cutoffs(now: datetime | None = None) -> dict[str, datetime]:
    now = now or timezone.now()
    return {name: now - timedelta(days=days) for name, days in retention_days().items()}


def _delete_by_pk(model: type[models.Model], pks: list[int]) -> None:
    """DELETE these rows by primary key, first setting the SET_NULL references to them (entries keep
    living). Without Django's collector, which would load every row (bodies, JSON payloads) into Python
    first: that load was most of a batch's CPU. A relation of any other kind falls back to it."""
    relations = model._meta.related_objects
    if any(rel.on_delete is not models.SET_NULL for rel in relations):
        models.QuerySet(model).filter(pk__in=pks).delete()
        return
    for rel in relations:
        name = rel.field.name
        models.QuerySet(rel.related_model).filter(**{f"{name}__in": pks}).update(**{name: None})
    rows = models.QuerySet(model).filter(pk__in=pks)
    rows._raw_delete(rows.db)  # the one DELETE the collector itself ends with


def _rest(seconds: float) -> None:
    time.sleep(seconds)  # (its own name: the benchmark counts the rests)


def _purge_kind(
    kind: Kind, cutoff: datetime, batch_size: int, max_batches: int, pause: float, share: float
) -> Counter:
    per_tenant: Counter = Counter()
    for _ in range(max_batches):
        started = time.monotonic()
        batch = list(kind.expired(cutoff).values_list("pk", "tenant_id")[:batch_size])
        if not batch:
            break
        pks = [pk for pk, _tenant in batch]
        with transaction.atomic():
            if kind.clear is not None:
                models.QuerySet(kind.model).filter(pk__in=pks).update(**kind.clear)
            else:
                _delete_by_pk(kind.model, pks)
        per_tenant.update(tenant for _pk, tenant in batch)
        if len(batch) < batch_size:
            break
        # The purge takes at most `share` of the database's time: after a batch that took t seconds it
        # rests t·(1 − share)/share (at least `pause`), so the requests served meanwhile keep their pace.
        busy = time.monotonic() - started
        rest = max(pause, busy * (1 - share) / share) if pause and share < 1 else pause
        if rest:  # (pause=0: no rest at all, for tests)
            _rest(rest)
    return per_tenant


def purge_expired(
    now: datetime | None = None,
    *,
    batch_size: int = 500,
    max_batches: int = 1000,
    pause: float = 0.05,
    share: float = 0.25,
) -> str:
    """Django-q2 entry point (daily). Returns one line: what each kind removed."""
    from integrations.models import Tenant

    from .recorder import record_entry

    now = now or timezone.now()
    limits = cutoffs(now)
    removed: dict[int | None, dict[str, int]] = defaultdict(dict)
    totals: dict[str, int] = {}
    for kind in KINDS:
        counts = _purge_kind(kind, limits[kind.name], batch_size, max_batches, pause, share)
        totals[kind.name] = sum(counts.values())
        for tenant_id, n in counts.items():
            removed[tenant_id][kind.name] = n
    days = retention_days()
    tenants = Tenant.objects.in_bulk([t for t in removed if t is not None])
    for tenant_id, counts in removed.items():
        tenant = tenants.get(tenant_id)
        if tenant is None:
            continue  # no tenant (or deleted with its rows): counted in the result line below
        record_entry(
            tenant=tenant,
            operation="retention.purge",
            status=AuditEntry.Status.SUCCEEDED,
            record_key="audit-trail",
            payload={
                "removed": counts,
                "cutoffs": {k: limits[k].isoformat() for k in counts},
                "retention_days": {k: days[k] for k in counts},
            },
            actor="retention",
        )
    orphans = removed.get(None, {})
    line = ", ".join(f"{k} {v}" for k, v in totals.items() if v) or "nothing expired"
    if orphans:
        line += f" (of which without a tenant: {', '.join(f'{k} {v}' for k, v in orphans.items())})"
    log.info("retention purge: %s", line)
    return line


def horizon() -> dict[str, datetime | None]:
    """How far back each table's history goes now (one index lookup each)."""
    return {
        "audit entries": AuditEntry.objects.aggregate(v=models.Min("created_at"))["v"],
        "API calls": ApiCall.objects.aggregate(v=models.Min("started_at"))["v"],
        "inbound events": InboundEvent.objects.aggregate(v=models.Min("received_at"))["v"],
    }


def ensure_schedule() -> str:
    from integrations.base import schedules

    return schedules.ensure("audit-retention-purge", "audit.retention.purge_expired", daily=True)
