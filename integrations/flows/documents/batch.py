"""Per page, not per row (issue 17): a poll page's new documents are claimed a few at a time, and a
created task is stored, fenced, in one conditional UPDATE that commits with its audit entry.

The exactly-once rules of create.py are unchanged (ARCHITECTURE §6): a claim is durable before its
POST, it carries the attempt's window on Asana's clock, and the GID is stored only while the claim
holds. What changes is how many statements that takes:

- **claims**: the page's documents that have no link yet and whose plan is a create get their
  RecordLinks inserted already claimed (`creating`, in flight, claim token 1, the window opened at
  Asana's time now), `CLAIM_AHEAD` documents at a time, by one bulk INSERT in one transaction. If
  any of them exists meanwhile (another worker, a push), the whole insert rolls back and each
  document goes the row-by-row way, which settles the race on the unique constraint as before;
- **a claim ages**: a page's last create may come well after its claim (the shared rate budget
  paces creates). Once the next claim is a third of the lease old, it and every claim of the page
  still waiting are renewed by one conditional UPDATE, so another worker never takes a live claim
  for an abandoned one;
- **the store** (`store_fenced`): `UPDATE … WHERE pk AND claim_token AND no task yet` sets the GID,
  the payload, and the guarded values with Asana's time of the write; the creation's AuditEntry and
  its GuardedWrite commit in the same transaction. Any surprise (the fence moved, the task already
  linked elsewhere) rolls that back and the row-by-row store decides, as before;
- **API-call rows** of a page are written together when the page ends (`audit.recorder`'s buffer).
  A worker killed mid-page loses those excerpts, never an effect: the AuditEntry of every create
  commits with its GID.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from integrations.flows.documents.plan import LinkView, Plan, parse_dt, plan_document
from integrations.models import RecordLink

Claim = tuple[RecordLink, Plan]
# Documents claimed at a time, ahead of their creates: one INSERT per this many new documents. A worker
# killed outright leaves at most this many claims to wait out the lease (and Asana's search index)
# before they are reconciled and created; fewer means more INSERTs, more means a longer wait then.
CLAIM_AHEAD = 10
IN_FLIGHT = "create in flight"  # create.IN_FLIGHT (create.py imports this module)


def claim_new(
    sync: Any, batch: list[Any], links: dict[tuple[str, str], RecordLink]
) -> dict[tuple[str, str], Claim]:
    """Claim, in one INSERT, the page's documents that have no link and will get a task."""
    if sync.dry_run:
        return {}
    number_field = sync.doc.number_field
    wanted: dict[tuple[str, str], tuple[Any, Plan]] = {}
    for record in batch:
        key = (str(record.get("Type")), str(record.get(number_field)))
        if key in links or key in wanted:
            continue
        plan = plan_document(
            record, sync.settings, LinkView(RecordLink.State.CREATING), sync.live_specs, key="/".join(key)
        )
        if plan.action == "create":
            wanted[key] = (record, plan)
    if not wanted:
        return {}
    now, asana_now = sync.now(), sync.asana.asana_now()
    rows = [
        RecordLink(
            tenant=sync.tenant,
            kind=sync.doc.link_kind,
            acumatica_type=doc_type,
            acumatica_ref=number,
            acumatica_id=str(getattr(record, "id", None) or ""),
            source_modified_at=parse_dt(record.get("LastModifiedDateTime")),
            flow=sync.flow,
            state=RecordLink.State.CREATING,
            state_reason=IN_FLIGHT,
            attempt_started_at=now,
            attempt_asana_started_at=asana_now,
            claim_token=1,
        )
        for (doc_type, number), (record, _plan) in wanted.items()
    ]
    try:
        with transaction.atomic():
            RecordLink.objects.bulk_create(rows)
    except IntegrityError:
        return {}  # someone else is on this page: each document settles its own race
    if any(row.pk is None for row in rows):  # a backend that cannot return ids: look them up
        return {}
    return {key: (row, wanted[key][1]) for key, row in zip(wanted, rows, strict=True)}


def release_unstarted(claims: Any) -> None:
    """Give back claims whose create was never attempted (no POST was sent for them)."""
    ids = [link.pk for link, _plan in claims]
    if ids:
        RecordLink.objects.filter(
            pk__in=ids, claim_token=1, asana_task_gid="", state_reason=IN_FLIGHT
        ).update(
            state_reason="claim released: the pass stopped before this document's create",
            attempt_started_at=None,
            attempt_asana_started_at=None,
            updated_at=timezone.now(),
        )


def keep_fresh(sync: Any, claim: Claim, waiting: Iterable[Claim]) -> bool:
    """Before a claimed document's POST: once its claim is a third of the lease old, renew it and every
    claim of the page still waiting, in one UPDATE (no other worker may take a waiting claim for an
    abandoned one). False: this claim is no longer ours (then: row by row, which decides)."""
    link = claim[0]
    now = sync.now()
    if link.attempt_started_at is not None and now - link.attempt_started_at < sync.lease / 3:
        return True
    links = [link, *(other for other, _plan in waiting)]
    fence = [each.pk for each in links]
    renewed = RecordLink.objects.filter(
        pk__in=fence, claim_token=1, asana_task_gid="", state_reason=IN_FLIGHT
    ).update(attempt_started_at=now, updated_at=timezone.now())
    if renewed == len(links):
        for each in links:
            each.attempt_started_at = now
        return True
    ours = set(
        RecordLink.objects.filter(
            pk__in=fence, claim_token=1, asana_task_gid="", state_reason=IN_FLIGHT, attempt_started_at=now
        ).values_list("pk", flat=True)
    )
    for each in links:
        if each.pk in ours:
            each.attempt_started_at = now
    return link.pk in ours


def store_fenced(
    sync: Any,
    link: RecordLink,
    task_gid: str,
    plan: Plan,
    *,
    token: int,
    values: dict[str, Any],
    asana_time: datetime | None,
    audit: Any,
) -> tuple[bool, bool]:
    """Store the created task in one fenced UPDATE + its audit rows. Returns (stored, guarded values
    recorded); not stored: the row-by-row store decides (the fence moved, or the task is linked
    elsewhere). A link that already had guarded values (a task made again) records them the usual way."""
    from integrations.flows.common import binding

    fields: dict[str, Any] = {
        "asana_task_gid": task_gid,
        "state": RecordLink.State.LINKED,
        "state_reason": "",
        "payload_hash": plan.payload_hash,
        "last_payload": plan.payload,
        "failure_count": 0,
        "attempt_started_at": None,
        "updated_at": timezone.now(),
    }
    first_write = bool(values) and asana_time is not None and not link.guarded_values
    if first_write:
        fields.update(guarded_values=dict(values), guarded_written_at=asana_time)
    try:
        with transaction.atomic():
            stored = RecordLink.objects.filter(pk=link.pk, claim_token=token, asana_task_gid="").update(
                **fields
            )
            if stored != 1:
                raise _FenceMoved
            for name, value in fields.items():
                setattr(link, name, value)
            if audit is not None:
                audit(link)
            if first_write:
                binding.record_first_write(link, values, asana_time, operation="create")
    except (_FenceMoved, IntegrityError):
        link.refresh_from_db()
        return False, False
    return True, first_write


class _FenceMoved(Exception):
    pass
