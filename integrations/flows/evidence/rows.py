"""The evidence of one period: one row per document created or released (or refused) in it, built only
from what the connector recorded when it acted — never re-read from a vendor:

    approvals          each release attempt's `source_snapshot` (approval_binding.Attempt.bind): who
                       approved, on Asana's clock, and the guarded values that approval was bound to
    values written     GuardedWrite: every guarded value the connector wrote to the task, with Asana's
                       time of the write (an approval older than the last write never binds)
    release            the successful release entry: its time and the document's values re-read just
                       before releasing
    in between         `changed_after_approval` entries (the values changed in the ERP, approval reset)
    refusals/failures  release entries quarantined (refused: what differed) or failed
    controls           entries of duplicate-hold / separation-of-duties controls, when such controls
                       record any (operations starting with CONTROL_PREFIXES)
    replays            every entry written by an operator's replay (`replay_of` set): who, when, what
    hashes             the link's payload hash, and a SHA-256 of the approved values (canonical JSON)

Every row lists the ids of the audit entries it was built from, so each cell can be traced back.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils import timezone

from audit.models import AuditEntry
from integrations.models import Flow, GuardedWrite, RecordLink, Tenant

CREATE_OPERATIONS = ("create_task", "purchase_order.create")
RELEASE_OPERATIONS = ("bill.release", "purchase_order.release")
CHANGED = "changed_after_approval"
CONTROL_PREFIXES = ("duplicate", "sod")
# A document is in the period when one of these happened to it in the period.
SCOPE_OPERATIONS = (*CREATE_OPERATIONS, *RELEASE_OPERATIONS, CHANGED)
AMOUNT_FIELDS = ("Amount", "OrderTotal", "amount")


@dataclass
class EvidenceRow:
    link_id: int
    flow: str
    kind: str
    document: str
    generation: int
    asana_task: str
    sage_po: str
    outcome: str  # released | refused | failed | created | pending
    amount: str
    created_at: str = ""
    created_by: str = ""
    approvals: str = ""
    approved_values: str = ""
    values_written_at: str = ""
    guarded_writes: str = ""
    released_at: str = ""
    released_values: str = ""
    changed_after_approval: str = ""
    refusals: str = ""
    failures: str = ""
    controls: str = ""
    replays: str = ""
    payload_hash: str = ""
    approved_values_sha256: str = ""
    exceptions: str = ""
    audit_entries: str = ""
    # Not in the CSV: the PDF's exception page lists the history it came from.
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def is_exception(self) -> bool:
        return bool(self.exceptions)


COLUMNS = [name for name in EvidenceRow.__dataclass_fields__ if name != "history"]


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in the site's time zone: `end` is inclusive, as people say it."""
    tz = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(start, time.min), tz),
        timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz),
    )


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_of(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest() if value else ""


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value or "")


def _amount(*candidates: Any) -> Decimal:
    for values in candidates:
        if not isinstance(values, dict):
            continue
        for name in AMOUNT_FIELDS:
            if values.get(name) not in (None, ""):
                try:
                    return Decimal(str(values[name])).quantize(Decimal("0.01"))
                except InvalidOperation:
                    continue
        lines = values.get("lines")
        if isinstance(lines, list) and lines:  # a Sage PO request: quantity × unit cost per line
            try:
                total = sum(
                    Decimal(str(ln.get("quantity", 1))) * Decimal(str(ln.get("unit_cost", 0))) for ln in lines
                )
                return Decimal(total).quantize(Decimal("0.01"))
            except (InvalidOperation, AttributeError):
                continue
    return Decimal("0.00")


def build_rows(tenant: Tenant, start: date, end: date, *, flow: Flow | None = None) -> list[EvidenceRow]:
    """The evidence rows of `tenant` for [start, end] (inclusive dates), optionally one flow's."""
    since, until = period_bounds(start, end)
    scoped = AuditEntry.objects.filter(
        tenant=tenant,
        record_link__isnull=False,
        created_at__gte=since,
        created_at__lt=until,
        operation__in=SCOPE_OPERATIONS,
    )
    if flow is not None:
        scoped = scoped.filter(record_link__flow=flow)
    link_ids = set(scoped.values_list("record_link_id", flat=True))
    links = {
        lk.pk: lk
        for lk in RecordLink.objects.filter(pk__in=link_ids).select_related("flow").order_by("created_at")
    }
    entries: dict[int, list[AuditEntry]] = defaultdict(list)
    for e in AuditEntry.objects.filter(record_link_id__in=link_ids, created_at__lt=until).order_by(
        "created_at", "id"
    ):
        entries[e.record_link_id].append(e)
    writes: dict[int, list[GuardedWrite]] = defaultdict(list)
    for w in GuardedWrite.objects.filter(link_id__in=link_ids).order_by("asana_time", "pk"):
        if w.recorded_at < until:
            writes[w.link_id].append(w)
    from mappings.models import UserMapping

    names = {
        u.asana_user_gid: u.display_name or u.email
        for u in UserMapping.objects.filter(tenant=tenant).exclude(asana_user_gid="")
    }
    return [_row(links[pk], entries[pk], writes[pk], names) for pk in links]


def _row(
    link: RecordLink, entries: list[AuditEntry], writes: list[GuardedWrite], names: dict[str, str]
) -> EvidenceRow:
    creates = [e for e in entries if e.operation in CREATE_OPERATIONS and e.status == "succeeded"]
    releases = [e for e in entries if e.operation in RELEASE_OPERATIONS]
    released = [e for e in releases if e.status in ("succeeded", "unchanged")]
    refused = [e for e in releases if e.status == "quarantined"]
    failed = [e for e in releases if e.status == "failed"]
    changed = [e for e in entries if e.operation == CHANGED]
    controls = [e for e in entries if e.operation.startswith(CONTROL_PREFIXES)]
    replays = [e for e in entries if e.replay_of_id]

    approvals: dict[tuple[str, str], None] = {}
    for e in releases:
        snap = e.source_snapshot or {}
        if snap.get("approved_at") or snap.get("approved_by"):
            approvals[(str(snap.get("approved_by") or "?"), str(snap.get("approved_at") or "?"))] = None
    final = released[0] if released else (releases[-1] if releases else None)
    final_snap = (final.source_snapshot or {}) if final else {}
    approved_values = final_snap.get("values") or {}
    released_values = (final_snap.get("document_values") or {}) if released else {}
    if released:
        outcome = "released"
    elif refused and (not failed or refused[-1].pk > failed[-1].pk):
        outcome = "refused"
    elif failed:
        outcome = "failed"
    elif creates:
        outcome = "created"
    else:
        outcome = "pending"

    exceptions = []
    if refused:
        exceptions.append(f"release refused {len(refused)}×")
    if failed:
        exceptions.append(f"release failed {len(failed)}×")
    if changed:
        exceptions.append(f"changed after approval {len(changed)}×")
    if replays:
        exceptions.append(f"replayed {len(replays)}×")
    if released and not approvals and link.kind != RecordLink.Kind.PURCHASE_REQUEST:
        exceptions.append("released without a recorded approval")
    if controls:
        exceptions.append(f"controls {len(controls)}×")

    pr_payload = creates[0].payload if creates and link.kind == RecordLink.Kind.PURCHASE_REQUEST else {}
    amount = _amount(released_values, approved_values, link.guarded_values, pr_payload)
    document = (
        f"{link.acumatica_type} {link.acumatica_ref}".strip()
        if link.acumatica_ref
        else f"purchase request {link.asana_task_gid}"
    )
    return EvidenceRow(
        link_id=link.pk,
        flow=link.flow.name if link.flow else "",
        kind=link.kind,
        document=document,
        generation=link.generation,
        asana_task=link.asana_task_gid,
        sage_po=link.sage_po_number,
        outcome=outcome,
        amount=str(amount),
        created_at=_iso(creates[0].created_at) if creates else "",
        created_by=creates[0].actor if creates else "",
        # The approver as Asana recorded them (user GID), with the person's name when the roster knows it.
        approvals="; ".join(
            f"{by}{f' ({names[by]})' if by in names else ''} at {at}"
            for by, at in sorted(approvals, key=lambda a: a[1])
        ),
        approved_values=canonical_json(approved_values) if approved_values else "",
        values_written_at=str(final_snap.get("values_written_at") or ""),
        guarded_writes="; ".join(
            f"{w.operation} {canonical_json(w.values)} at {_iso(w.asana_time)}"
            + (" (approval reset)" if w.approval_reset else "")
            for w in writes
        ),
        released_at=str(final_snap.get("released_at") or (_iso(released[0].created_at) if released else "")),
        released_values=canonical_json(released_values) if released_values else "",
        changed_after_approval="; ".join(
            f"{_iso(e.created_at)}: {', '.join((e.payload or {}).get('changes') or []) or e.error}"
            for e in changed
        ),
        refusals="; ".join(f"{_iso(e.created_at)}: {e.error}" for e in refused),
        failures="; ".join(f"{_iso(e.created_at)}: {e.error}" for e in failed),
        controls="; ".join(f"{_iso(e.created_at)} {e.operation} {e.status}: {e.error}" for e in controls),
        replays="; ".join(
            f"{_iso(e.created_at)} {e.operation} {e.status} by {e.actor} (replay of #{e.replay_of_id})"
            for e in replays
        ),
        payload_hash=link.payload_hash,
        approved_values_sha256=sha256_of(approved_values),
        exceptions="; ".join(exceptions),
        audit_entries=" ".join(str(e.pk) for e in entries),
        history=[
            {
                "id": e.pk,
                "at": _iso(e.created_at),
                "operation": e.operation,
                "status": e.status,
                "actor": e.actor,
                "replay_of": e.replay_of_id,
                "detail": e.error,
            }
            for e in entries
        ],
    )


def summary(rows: list[EvidenceRow]) -> dict[str, Any]:
    """Counts and amount totals for the report's first page."""
    by_outcome: dict[str, list[EvidenceRow]] = defaultdict(list)
    for r in rows:
        by_outcome[r.outcome].append(r)
    total = lambda rs: str(sum((Decimal(r.amount) for r in rs), Decimal("0.00")))  # noqa: E731
    return {
        "documents": len(rows),
        "amount": total(rows),
        "outcomes": {k: {"count": len(v), "amount": total(v)} for k, v in sorted(by_outcome.items())},
        "exceptions": sum(1 for r in rows if r.is_exception),
        "changed_after_approval": sum(1 for r in rows if r.changed_after_approval),
        "refused": sum(1 for r in rows if r.refusals),
        "replayed": sum(1 for r in rows if r.replays),
    }


def as_dict(row: EvidenceRow) -> dict[str, Any]:
    data = asdict(row)
    data.pop("history", None)
    return data
