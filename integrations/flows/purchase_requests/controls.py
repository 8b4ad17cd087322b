"""Segregation of duties for purchase requests (finance controls, issue 20): before a request's PO is
built, the person who approved it must not be its requester, and must be one of the flow's allowed
approvers when the flow names them (`options.controls.segregation_of_duties`, as for bills).

    approver    who Asana says approved: the approving story's author (binding.approval_moment, as the
                bill release reads it), else the task's `completed_by`. Never a people custom field:
                anyone can fill one in.
    requester   whom the flow treats as the requester (orders.py): the people field
                `options.requester_field_gid` names, else — and when that field is empty — the task's
                `created_by`.

A refused approval creates no PO: the task's approval is reset under the flow's rule with a comment
saying why, and the refusal is a `controls.segregation_of_duties` audit row (quarantined; in the
request's lineage when it has a record, on the flow's controls page and in the dashboard's approvals
tile). No record is made for it: the next approval, by someone allowed, is processed as usual. The dry
run says what the control would do and writes nothing.

Only segregation of duties applies to purchase requests: a request's subtasks are its PO lines, so
approval-level subtasks (tiers), the duplicate hold and escalation are for the bills / purchase orders
flows (config.validation_errors refuses them on a purchase-request flow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from integrations.flows.common import binding
from integrations.flows.common import control_effects as fx
from integrations.flows.common.controls import rules
from integrations.flows.common.controls.config import controls_of
from integrations.models import Flow, RecordLink
from mappings.users import requester_of


@dataclass(frozen=True)
class Verdict:
    outcome: str = ""  # set: the approval was refused (or would be, in a dry run); return it
    note: str = ""  # what the dry-run plan adds when the approval stands

    @property
    def refused(self) -> bool:
        return bool(self.outcome)


def approver_of(asana: Any, flow: Flow, task: dict[str, Any], inbound_event: Any = None) -> str:
    moment = binding.approval_moment(asana, flow, task, inbound_event)
    return moment.by or str((task.get("completed_by") or {}).get("gid") or "")


def check(
    flow: Flow,
    task: dict[str, Any],
    link: RecordLink | None,
    *,
    asana: Any,
    inbound_event: Any = None,
    dry_run: bool = False,
) -> Verdict:
    """Segregation of duties on an approved request (nothing when the control is off)."""
    sod = controls_of(flow.options).sod
    if not sod.enabled:
        return Verdict()
    options = flow.options or {}
    requester = requester_of(task, str(options.get("requester_field_gid") or "")).gid
    approver = approver_of(asana, flow, task, inbound_event)
    allowed = rules.sod_allowed(sod, fx.team_members(asana, sod.allowed_team_gid))
    problem = rules.sod_problem(sod, approver, creators=set(), requester=requester, allowed=allowed)
    gid = str(task["gid"])
    if problem is None:
        if not dry_run:
            fx.decision(
                link,
                flow,
                "segregation_of_duties",
                "succeeded",
                "approver allowed",
                key=gid,
                approver=approver,
                requester=requester,
            )
        return Verdict(note=f" (segregation of duties: approver {approver} allowed)")
    if dry_run:
        return Verdict(f"dry run: {problem}; the approval would be reset and no PO created")
    fx.reset_approval(asana, flow, task)
    fx.comment(
        asana,
        gid,
        f"No purchase order was created: {problem}. Another approver must approve the request.",
    )
    fx.decision(
        link,
        flow,
        "segregation_of_duties",
        "quarantined",
        problem,
        key=gid,
        approver=approver,
        requester=requester,
    )
    return Verdict(f"refused: {problem}; approval reset")
