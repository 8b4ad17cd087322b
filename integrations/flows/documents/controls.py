"""The finance controls the documents flow applies (issue 20): the duplicate-invoice check before a
bill's task is created (a likely duplicate still gets its task, marked, and its release is held until an
operator clears it), the approval-level subtasks of the bill's tier (by amount, branch and vendor class)
after the create, and the reset of every level when a guarded value changes.
"""

from __future__ import annotations

import logging
from typing import Any

from integrations.base import errors
from integrations.flows.common import control_effects as fx
from integrations.flows.common.controls import rules
from integrations.flows.common.controls.config import Controls, controls_of
from integrations.models import ControlHold, RecordLink

log = logging.getLogger(__name__)

DUPLICATE_FIELDS = ("Type", "ReferenceNbr", "Vendor", "VendorRef", "Amount", "Date", "Status")
TASK_URL = "https://app.asana.com/0/0/{gid}"


def controls(flow: Any) -> Controls:
    return controls_of(flow.options)


def tier_of(sync: Any, record: Any) -> fx.TierChoice:
    """The document's tier; the vendor's class (when a tier depends on it) is read once per vendor and
    pass (a DocumentSync lives for one pass)."""
    cache = vars(sync).setdefault("_vendor_classes", {})
    return fx.tier_of(controls(sync.flow), record, sync.acumatica, cache)


def _quote(text: str) -> str:
    return text.replace("'", "''")


def likely_duplicates(sync: Any, record: Any) -> list[rules.DuplicateMatch]:
    """The tenant's other bills of the same vendor that this one likely duplicates: Acumatica's bills
    (open and released) and the link history (bills since deleted in Acumatica still count)."""
    settings = controls(sync.flow).duplicates
    vendor = str(record.get("Vendor") or "")
    if not settings.enabled or not vendor or sync.doc.entity != "Bill":
        return []
    candidates: dict[str, dict[str, Any]] = {}
    for link in RecordLink.objects.filter(tenant=sync.tenant, kind=RecordLink.Kind.BILL).exclude(
        acumatica_ref=str(record.get("ReferenceNbr") or "")
    ):
        values = dict(link.guarded_values or {})
        if values.get("Vendor") == vendor:
            candidates[link.acumatica_ref] = {**values, "ReferenceNbr": link.acumatica_ref, "Date": None}
    flt = f"Vendor eq '{_quote(vendor)}'"
    for bill in sync.acumatica.iter("Bill", filter=flt, select=DUPLICATE_FIELDS):
        candidates[str(bill.get("ReferenceNbr"))] = dict(bill.items()) if hasattr(bill, "items") else bill
    return rules.duplicate_matches(record, candidates.values(), window_days=settings.window_days)


def after_create(sync: Any, link: RecordLink, record: Any, matches: list[rules.DuplicateMatch]) -> list[str]:
    """Mark and hold a likely duplicate; create the tier's approval subtasks. Returns notes for the
    create's audit row. A failure here never undoes the create (the release path re-checks both)."""
    notes: list[str] = []
    gid = link.asana_task_gid
    try:
        if matches:
            notes.append(_hold(sync, link, matches))
        choice = tier_of(sync, record)
        tier = choice.tier
        if tier is not None:
            fx.ensure_levels(sync.asana, gid, tier, fx.label(link))
            fx.decision(
                link,
                sync.flow,
                "approval_levels",
                "succeeded",
                choice.line(),
                tier=tier.name,
                vendor_class=choice.vendor_class,
            )
            notes.append(f"tier {tier.name}: {len(tier.levels)} approval level(s)")
    except errors.ConnectorError as exc:
        log.warning("finance controls after the create of task %s: %s", gid, exc)
        notes.append(f"finance controls not fully applied ({exc}); the release re-checks them")
    return notes


def _hold(sync: Any, link: RecordLink, matches: list[rules.DuplicateMatch]) -> str:
    first = matches[0]
    other = RecordLink.objects.filter(
        tenant=sync.tenant, kind=RecordLink.Kind.BILL, acumatica_ref=first.reference
    )
    other_gid = other.exclude(asana_task_gid="").values_list("asana_task_gid", flat=True).first()
    where = f"Bill {first.reference}" + (f" ({TASK_URL.format(gid=other_gid)})" if other_gid else "")
    text = f"possible duplicate of {where}: {first.why}"
    ControlHold.objects.create(
        tenant=sync.tenant, link=link, kind=ControlHold.Kind.DUPLICATE, reason=text, duplicate_of=where
    )
    field = controls(sync.flow).duplicates.field_gid
    if field:
        sync.asana.update_task(
            link.asana_task_gid, {"custom_fields": {field: f"Possible duplicate of {where}"}}
        )
    others = "".join(f"; also Bill {m.reference}: {m.why}" for m in matches[1:])
    fx.comment(
        sync.asana,
        link.asana_task_gid,
        f"Possible duplicate of {where} ({first.why}{others}). Its release is held until an operator "
        "clears the hold in the ml-connector console.",
    )
    fx.decision(
        link, sync.flow, "duplicate_hold", "quarantined", text, matches=[m.reference for m in matches]
    )
    return text


def after_guarded_change(sync: Any, link: RecordLink, record: Any) -> None:
    """A guarded value changed: every approval level must be given again (and the tier may have moved)."""
    if not controls(sync.flow).tiers_enabled or not link.asana_task_gid:
        return
    try:
        tier = tier_of(sync, record).tier
        if tier is None:
            return
        reset = fx.reset_levels(sync.asana, link.asana_task_gid)
        fx.ensure_levels(sync.asana, link.asana_task_gid, tier, fx.label(link))
    except errors.ConnectorError as exc:
        log.warning("could not reset the approval levels of task %s: %s", link.asana_task_gid, exc)
        return
    if reset:
        fx.comment(
            sync.asana, link.asana_task_gid, f"The document changed: approval levels reset ({len(reset)})."
        )
        fx.decision(
            link, sync.flow, "approval_levels", "succeeded", "levels reset after a change", reset=reset
        )


def annotate_plan(sync: Any, plan: Any, record: Any) -> None:
    """The dry-run plan says what the controls would do: the tier a document falls into (its levels) and,
    for a create, whether it would be held as a likely duplicate. Reads only."""
    if record is None or plan.action not in ("create", "update", "skip"):
        return
    notes = []
    try:
        choice = tier_of(sync, record)
    except errors.ConnectorError as exc:
        notes.append(f"tier not known: the vendor's class could not be read ({exc})")
    else:
        if choice.tier is not None:
            notes.append(choice.line())
    if plan.action == "create":
        matches = likely_duplicates(sync, record)
        if matches:
            notes.append(
                f"would be held: possible duplicate of Bill {matches[0].reference} ({matches[0].why})"
            )
    if notes:
        plan.reason = "; ".join([plan.reason, *notes]) if plan.reason else "; ".join(notes)
