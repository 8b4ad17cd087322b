"""The finance controls at release time (issue 20), after the approval binds to the document and before
anything is sent to Acumatica: a duplicate-invoice hold, segregation of duties, and the approval levels
of the bill's amount tier. Each decision is an audit row (`controls.*`, in the lineage) and a comment on
the task; a refusal resets the approval (Attempt.refuse), a wait leaves it standing.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from integrations.base import errors
from integrations.flows.common import control_effects as fx
from integrations.flows.common.binding import ApprovalMoment
from integrations.flows.common.controls import rules
from integrations.flows.common.controls.config import Controls
from integrations.models import ControlHold, RecordLink

if TYPE_CHECKING:
    from integrations.flows.approvals.release import Attempt

log = logging.getLogger(__name__)


def creators_of(ctx: Attempt, controls: Controls) -> set[str]:
    """The Asana users who entered the document (its Acumatica creator through the user mappings)."""
    link = ctx.link
    entity = "Bill" if ctx.is_bill else "PurchaseOrder"
    field = controls.sod.creator_field
    try:
        record = ctx.acu.get(entity, (link.acumatica_type, link.acumatica_ref), custom=field)
    except errors.PermanentError as exc:
        raise errors.Invalid(
            f"segregation of duties needs the document's creator ({field}) and Acumatica refused it: "
            f"{exc.message}",
            system="acumatica",
        ) from exc
    return fx.creator_gids(link.tenant_id, getattr(record, "custom", {}).get(field))


def gate(ctx: Attempt, document: Any, moment: ApprovalMoment) -> str | None:
    """None: the controls allow the release. Otherwise the outcome (the task was told why)."""
    link, flow = ctx.link, ctx.flow
    controls = fx.controls_for_link(link, flow)
    hold = ControlHold.objects.filter(link=link, cleared_at__isnull=True).first()
    if hold is not None:
        return _held(ctx, hold)
    if not (controls.sod.enabled or controls.tiers_enabled):
        return None
    asana = ctx.clients.asana
    creators = creators_of(ctx, controls) if controls.sod.enabled and controls.sod.block_creator else set()
    if controls.sod.enabled:
        allowed = rules.sod_allowed(controls.sod, fx.team_members(asana, controls.sod.allowed_team_gid))
        problem = rules.sod_problem(controls.sod, moment.by, creators=creators, allowed=allowed)
        if problem:
            fx.decision(link, flow, "segregation_of_duties", "quarantined", problem, approver=moment.by)
            return ctx.refuse(problem)
        fx.decision(link, flow, "segregation_of_duties", "succeeded", "approver allowed", approver=moment.by)
    choice = _tier(ctx, controls, document)
    if choice.tier is None:
        return None
    return _levels(ctx, choice, creators)


def _tier(ctx: Attempt, controls: Controls, document: Any) -> fx.TierChoice:
    """The tier the document falls into now (its vendor's class read once for this attempt)."""
    try:
        return fx.tier_of(controls, document, ctx.acu)
    except errors.PermanentError as exc:
        raise errors.Invalid(
            f"the approval tiers depend on the vendor's class and Acumatica refused the vendor "
            f"{fx.vendor_of(document)}: {exc.message}",
            system="acumatica",
        ) from exc


def _held(ctx: Attempt, hold: ControlHold) -> str:
    snapshot = RecordLink.objects.get(pk=ctx.link.pk).approved_snapshot or {}
    reason = f"held: {hold.reason}; an operator must clear the duplicate hold in the console first"
    if snapshot.get("hold_noted") != hold.pk:
        fx.decision(ctx.link, ctx.flow, "duplicate_hold", "skipped", reason, hold=hold.pk)
        fx.comment(ctx.clients.asana, ctx.task["gid"], f"Not released yet: {reason}.")
        RecordLink.objects.filter(pk=ctx.link.pk).update(
            approved_snapshot={**snapshot, "hold_noted": hold.pk}
        )
    return reason


def _levels(ctx: Attempt, choice: fx.TierChoice, creators: set[str]) -> str | None:
    link, asana, gid, tier = ctx.link, ctx.clients.asana, ctx.task["gid"], choice.tier
    assert tier is not None
    fx.ensure_levels(asana, gid, tier, fx.label(link))
    states = fx.read_levels(asana, gid, tier)
    problems = rules.levels_problems(
        states, link.guarded_written_at, allowed=fx.level_allowed(asana, tier), blocked=creators
    )
    summary = "; ".join(s.line() for s in states)
    if not problems:
        fx.decision(
            link,
            ctx.flow,
            "approval_levels",
            "succeeded",
            f"{tier.name}: {summary}",
            tier=tier.name,
            vendor_class=choice.vendor_class,
        )
        return None
    # An approval that does not count (too early, wrong person) is asked for again.
    by_index = {s.index: s for s in states}
    for index, why in problems:
        state = by_index[index]
        if state.status == "approved" and state.task_gid:
            asana.update_task(state.task_gid, {"approval_status": "pending"})
            fx.comment(asana, state.task_gid, f"Approval reset: {why}. Please approve again.")
    text = "; ".join(why for _, why in problems)
    snapshot = RecordLink.objects.get(pk=link.pk).approved_snapshot or {}
    if snapshot.get("levels_noted") != text:
        fx.decision(
            link,
            ctx.flow,
            "approval_levels",
            "skipped",
            f"{tier.name}: {text}",
            tier=tier.name,
            vendor_class=choice.vendor_class,
        )
        fx.comment(asana, gid, f"Not released yet ({choice.line()}): {text}.")
        RecordLink.objects.filter(pk=link.pk).update(approved_snapshot={**snapshot, "levels_noted": text})
    return f"waiting for approval levels: {text}"
