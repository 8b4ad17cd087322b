"""Sage 100 PO → linked Asana task: status, PO number and vendor name kept current; vanished POs flagged.

Polling (agent doc §2.2, reference sage100.md §2.5, §10.11): `GET /v1/purchase-orders?updated_since=`
with an overlap window (flow.options["overlap_seconds"], default 300). The agent reads `DateUpdated`
plus the decimal-hours `TimeUpdated` in the Sage server's zone and answers UTC `updated_at`; we keep
the largest `updated_at` processed as the cursor and skip a PO whose `(po_number, updated_at)` was
already applied (the overlap repeats rows on purpose).

Whether a line-only edit bumps the header's DateUpdated is unverified (ref §11), and deleted POs simply
vanish from the table (§2.4): so every `reconcile_hours` (default 24) each open link is re-read by
number; a 404 puts the link in `deleted`, appends an AuditEntry and tells the task once.

What is written: the to_asana FieldMappings of this flow if it has any, else those of the purchase
request flow that created the link (one set of mappings for both directions of the same task).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.recorder import audit_context, record_entry
from integrations.base import errors
from integrations.flows.common.sage_po import DELETED, write_back
from integrations.models import Cursor, Flow, RecordLink
from mappings.models import FieldMapping

log = logging.getLogger(__name__)

OPEN_STATES = (RecordLink.State.LINKED,)
COMPLETE = "X"  # ref §2.4: X = complete


def _utc(value: str | None) -> datetime | None:
    parsed = parse_datetime(value.replace("Z", "+00:00")) if value else None
    return parsed.astimezone(UTC) if parsed else None


def _mapping_flow(flow: Flow, link: RecordLink) -> Flow:
    own = FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ASANA).exists()
    return flow if own or link.flow is None else link.flow


def _link_for(flow: Flow, po: dict[str, Any]) -> RecordLink | None:
    links = RecordLink.objects.filter(tenant=flow.tenant, kind=RecordLink.Kind.PURCHASE_REQUEST)
    link = links.filter(sage_po_number=po["po_number"]).first()
    if link is None and po.get("external_id"):
        # A PO carrying our task GID whose create answer was lost: adopt it here too.
        link = links.filter(asana_task_gid=str(po["external_id"]), sage_po_number="").first()
        if link is not None:
            RecordLink.objects.filter(pk=link.pk).update(
                sage_po_number=po["po_number"], state=RecordLink.State.LINKED, state_reason=""
            )
            link.refresh_from_db()
    return link


def apply_po(flow: Flow, po: dict[str, Any], *, asana: Any) -> str:
    """One changed PO → its task. Returns linked | unchanged | unlinked."""
    link = _link_for(flow, po)
    if link is None:
        return "unlinked"
    updated = _utc(po.get("updated_at"))
    written = (link.last_payload or {}).get("status_written_for")
    if written and written == po.get("updated_at"):
        return "unchanged"  # the overlap window repeated a row already applied
    with audit_context(tenant_id=flow.tenant_id, record_link=link):
        changed = write_back(_mapping_flow(flow, link), link, po, asana=asana)
        state = RecordLink.State.CLOSED if po.get("status") == COMPLETE else link.state
        merged = {
            **(link.last_payload or {}),
            "status_written_for": po.get("updated_at"),
            "status": po.get("status"),
        }
        RecordLink.objects.filter(pk=link.pk).update(
            last_payload=merged, source_modified_at=updated, state=state
        )
    return "updated" if changed else "unchanged"


def flag_deleted(flow: Flow, link: RecordLink, *, asana: Any) -> None:
    """The PO is gone from Sage (deleted or purged): the link says so, the task is told once."""
    reason = f"Sage 100 PO {link.sage_po_number} no longer exists (deleted or purged in Sage)."
    RecordLink.objects.filter(pk=link.pk).update(state=RecordLink.State.DELETED, state_reason=reason)
    link.refresh_from_db()
    with audit_context(tenant_id=flow.tenant_id, record_link=link):
        record_entry(
            tenant=flow.tenant,
            flow=flow,
            operation="purchase_order.vanished",
            status="quarantined",
            record_key=link.asana_task_gid,
            error=reason,
        )
        po = {"po_number": link.sage_po_number, "vendor": {}, "totals": {}}
        write_back(_mapping_flow(flow, link), link, po, asana=asana, status=DELETED)
        asana.add_comment(link.asana_task_gid, reason + " The task keeps the old number for reference.")


def reconcile_open_links(flow: Flow, *, asana: Any, sage: Any) -> dict[str, int]:
    counts = {"checked": 0, "vanished": 0}
    links = RecordLink.objects.filter(
        tenant=flow.tenant, kind=RecordLink.Kind.PURCHASE_REQUEST, state__in=OPEN_STATES
    ).exclude(sage_po_number="")
    for link in links.iterator():
        counts["checked"] += 1
        try:
            po = sage.get_purchase_order(link.sage_po_number)
        except errors.NotFound:
            counts["vanished"] += 1
            flag_deleted(flow, link, asana=asana)
            continue
        apply_po(flow, po, asana=asana)
    return counts


def poll_changed_pos(flow: Flow, *, asana: Any, sage: Any, reconcile: bool | None = None) -> str:
    """One pass: changed POs since the cursor, then (when due) the reconciliation of open links."""
    options = flow.options or {}
    overlap = int(options.get("overlap_seconds", 300))
    cursor, _ = Cursor.objects.get_or_create(tenant=flow.tenant, stream=f"{flow.kind}:{flow.pk}")
    since = _utc(cursor.value) or (timezone.now() - timedelta(days=int(options.get("first_days", 30))))
    counts: dict[str, int] = {}
    newest = since
    for po in sage.iter_changed_pos(since, overlap_seconds=overlap):
        outcome = apply_po(flow, po, asana=asana)
        counts[outcome] = counts.get(outcome, 0) + 1
        updated = _utc(po.get("updated_at"))
        if updated and updated > newest:
            newest = updated
            Cursor.objects.filter(pk=cursor.pk).update(value=newest.isoformat())  # only after applying it
    stamp, _ = Cursor.objects.get_or_create(tenant=flow.tenant, stream=f"{flow.kind}:{flow.pk}:reconciled")
    last = _utc(stamp.value)
    due = last is None or timezone.now() - last >= timedelta(hours=float(options.get("reconcile_hours", 24)))
    if reconcile or (reconcile is None and due):
        counts.update(reconcile_open_links(flow, asana=asana, sage=sage))
        Cursor.objects.filter(pk=stamp.pk).update(value=timezone.now().isoformat())
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "no changes"
