"""The finance controls' effects shared by the documents and the approvals flows: the approval-level
subtasks on Asana (create, reset, read), the people a control names (the bill's creator through the user
mappings, a team's members), and the audit row of every control decision.

The rules themselves are pure (integrations/flows/common/controls/)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from audit.recorder import record_entry
from integrations.base import errors
from integrations.flows.common import binding
from integrations.flows.common.controls import rules
from integrations.flows.common.controls.config import Controls, Tier, controls_of
from integrations.models import Flow, RecordLink
from mappings.models import UserMapping

log = logging.getLogger(__name__)

SUBTASK_FIELDS = (
    "name",
    "resource_subtype",
    "approval_status",
    "completed",
    "completed_at",
    "assignee",
    "modified_at",
)
# Approval subtasks are approval tasks whatever the main task's rule is (reference/asana.md §4.4).
_LEVEL_RULE = Flow(approval_rule=Flow.ApprovalRule.APPROVAL_STATUS)


def controls_for_link(link: RecordLink, fallback: Flow | None = None) -> Controls:
    """The controls of the document's own flow (where they are configured)."""
    flow = link.flow if link.flow_id else fallback
    return controls_of(getattr(flow, "options", None))


def label(link: RecordLink) -> str:
    return f"{link.acumatica_type} {link.acumatica_ref}".strip()


def decision(
    link: RecordLink, flow: Flow | None, control: str, status: str, detail: str, **payload: Any
) -> None:
    """One audit row per control decision (`controls.<control>`), shown in the lineage of the link."""
    record_entry(
        tenant=link.tenant,
        flow=flow,
        record_link=link,
        operation=f"controls.{control}",
        status=status,
        record_key=label(link),
        payload=payload,
        error=detail,
    )


def comment(asana: Any, task_gid: str, text: str) -> None:
    try:
        asana.add_comment(task_gid, f"{text} (ml-connector)")
    except errors.ConnectorError as exc:
        log.warning("could not comment on task %s: %s", task_gid, exc)


# ---- people -------------------------------------------------------------------------------------------


def creator_gids(tenant_id: int, creator: Any) -> set[str]:
    """The Asana users the document's creator (Acumatica's CreatedByID / login) maps to through the
    user mappings: the mapping's Acumatica employee id or its e-mail equals the creator (any case)."""
    text = str(creator or "").strip()
    if not text:
        return set()
    rows = UserMapping.objects.filter(tenant_id=tenant_id).exclude(asana_user_gid="")
    return {
        u.asana_user_gid
        for u in rows
        if text.lower() in (u.acumatica_employee_id.lower(), u.email.lower())
        and u.acumatica_employee_id + u.email
    }


def team_members(asana: Any, team_gid: str) -> set[str]:
    return asana.team_user_gids(team_gid) if team_gid else set()


# ---- approval-level subtasks ---------------------------------------------------------------------------


def ensure_levels(asana: Any, task_gid: str, tier: Tier, document: str) -> list[dict[str, Any]]:
    """Create the tier's missing approval subtasks (one per level, assigned when the level names one
    approver, left for the team otherwise). Existing level subtasks are kept (they are found again by
    their name's prefix)."""
    subs = asana.subtasks(task_gid, fields=SUBTASK_FIELDS)
    have = {rules.level_of(s) for s in subs}
    total = len(tier.levels)
    for i, level in enumerate(tier.levels, start=1):
        if i in have:
            continue
        data: dict[str, Any] = {
            "name": rules.level_task_name(i, total, level, document),
            "resource_subtype": "approval",
            "notes": f"Approval level {i} of {total} ({tier.name}) for {document}. The release waits for "
            "every level; a change of the amount, vendor or reference resets them all. (ml-connector)",
        }
        if len(level.approvers) == 1:
            data["assignee"] = level.approvers[0]
        subs.append(asana.create_subtask(task_gid, data, fields=SUBTASK_FIELDS))
    return subs


def reset_levels(asana: Any, task_gid: str) -> list[str]:
    """Put every approved (or rejected) level subtask back to pending; returns the reset subtasks' names."""
    out = []
    for sub in asana.subtasks(task_gid, fields=SUBTASK_FIELDS):
        if rules.level_of(sub) is None or (sub.get("approval_status") or "pending") == "pending":
            continue
        asana.update_task(sub["gid"], {"approval_status": "pending"})
        out.append(str(sub.get("name") or sub["gid"]))
    return out


def read_levels(asana: Any, task_gid: str, tier: Tier) -> list[rules.LevelState]:
    subs = asana.subtasks(task_gid, fields=SUBTASK_FIELDS)
    approvals: dict[str, tuple[datetime | None, str]] = {}
    for sub in subs:
        if rules.level_of(sub) is not None and sub.get("approval_status") == "approved":
            moment = binding.approval_moment(asana, _LEVEL_RULE, sub)
            approvals[str(sub["gid"])] = (moment.at, moment.by)
    return rules.level_states(tier, subs, approvals)


def level_allowed(asana: Any, tier: Tier) -> Mapping[int, set[str] | None]:
    return {
        i: rules.level_approvers(level, team_members(asana, level.team_gid))
        for i, level in enumerate(tier.levels, start=1)
    }
