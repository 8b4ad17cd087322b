"""The finance controls' effects shared by the documents, approvals and purchase-request flows: the
approval-level subtasks on Asana (create, reset, read), the people a control names (the bill's creator
through the user mappings, a team's members), the vendor class a tier may depend on (read from
Acumatica's Vendor, once per vendor and pass), a refused approval put back on its task, and the audit
row of every control decision.

The rules themselves are pure (integrations/flows/common/controls/)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
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
    link: RecordLink | None,
    flow: Flow | None,
    control: str,
    status: str,
    detail: str,
    *,
    key: str = "",
    **payload: Any,
) -> None:
    """One audit row per control decision (`controls.<control>`), shown in the lineage of the link and
    on the flow's controls page. Without a link (a purchase request refused before it has one) the row
    names the task by `key` and belongs to the flow's tenant."""
    tenant = link.tenant if link is not None else flow.tenant  # type: ignore[union-attr]
    record_entry(
        tenant=tenant,
        flow=flow,
        record_link=link,
        operation=f"controls.{control}",
        status=status,
        record_key=key or (label(link) if link is not None else ""),
        payload=payload,
        error=detail,
    )


def comment(asana: Any, task_gid: str, text: str) -> None:
    try:
        asana.add_comment(task_gid, f"{text} (ml-connector)")
    except errors.ConnectorError as exc:
        log.warning("could not comment on task %s: %s", task_gid, exc)


def reset_approval(asana: Any, flow: Flow, task: Mapping[str, Any]) -> bool:
    """Put an approved task back to "needs approval" under the flow's approval rule (a refused approval
    must be given again). False: Asana refused the change (logged; the caller decides what follows)."""
    try:
        asana.update_task(task["gid"], binding.approval_reset_changes(flow, task))
    except errors.ConnectorError as exc:
        log.warning("could not reset the approval of task %s: %s", task["gid"], exc)
        return False
    return True


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


# ---- the tier of a document (amount, branch, vendor class) ----------------------------------------------


def uses_vendor_class(controls: Controls) -> bool:
    """Whether a tier depends on the vendor's class (only then is the Vendor record read)."""
    return controls.tiers_enabled and any(t.vendor_class for t in controls.tiers)


def vendor_of(document: Mapping[str, Any]) -> str:
    return str(document.get("Vendor") or document.get("VendorID") or "")


def vendor_class(acumatica: Any, vendor_id: str, cache: dict[str, str] | None = None) -> str:
    """The vendor's class: Acumatica's Vendor.VendorClass (reference/acumatica.md §3.4), one GET per
    vendor and `cache` (a pass). A vendor Acumatica does not find has no class: the general tiers apply.
    Any other refusal raises (a tier must never be chosen on a guess)."""
    if not vendor_id:
        return ""
    if cache is not None and vendor_id in cache:
        return cache[vendor_id]
    try:
        record = acumatica.get("Vendor", (vendor_id,), select=("VendorID", "VendorClass"))
        value = str(record.get("VendorClass") or "").strip()
    except errors.NotFound:
        value = ""
    if cache is not None:
        cache[vendor_id] = value
    return value


@dataclass(frozen=True)
class TierChoice:
    tier: Tier | None
    vendor: str = ""
    vendor_class: str | None = None  # None: not read (no tier depends on it)

    def line(self) -> str:
        """The plan's / audit row's tier line: the tier and, when a tier depends on it, the vendor's class."""
        if self.tier is None:
            return ""
        text = f"tier {self.tier.describe()}"
        if self.vendor_class is not None:
            text += f" [vendor {self.vendor}: class {self.vendor_class or '(none)'}]"
        return text


def tier_of(
    controls: Controls, document: Mapping[str, Any], acumatica: Any, cache: dict[str, str] | None = None
) -> TierChoice:
    """The tier a document falls into by amount, branch and (when a tier names one) vendor class."""
    if not controls.tiers_enabled:
        return TierChoice(None)
    vendor, vclass = vendor_of(document), None
    if uses_vendor_class(controls):
        vclass = vendor_class(acumatica, vendor, cache)
    amount = document.get("Amount") if document.get("Amount") is not None else document.get("OrderTotal")
    tier = rules.tier_for(
        controls, amount, branch=str(document.get("BranchID") or ""), vendor_class=vclass or ""
    )
    return TierChoice(tier, vendor, vclass)


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
