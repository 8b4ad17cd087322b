"""The pure rules of the finance controls: who may approve, which tier and levels a bill needs, the
state of those levels on Asana's approval subtasks, and whether a bill is a likely duplicate."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.flows.common.controls.config import Controls, Level, SegregationOfDuties, Tier

# ---- tiers and levels -----------------------------------------------------------------------------


def amount_of(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


def tier_for(controls: Controls, amount: Any, *, branch: str = "", vendor_class: str = "") -> Tier | None:
    """The tier a document falls into: among the tiers holding the amount, the most specific one whose
    branch / vendor class match (a tier without them applies to every branch / class)."""
    value = amount_of(amount)
    if not controls.tiers_enabled or value is None:
        return None
    best: tuple[int, Tier] | None = None
    for tier in controls.tiers:
        if tier.branch and tier.branch != branch:
            continue
        if tier.vendor_class and tier.vendor_class != vendor_class:
            continue
        if not tier.holds(value):
            continue
        score = bool(tier.branch) + bool(tier.vendor_class)
        if best is None or score > best[0]:
            best = (score, tier)
    return best[1] if best else None


LEVEL_NAME = re.compile(r"^\[Approval level (\d+) of (\d+)\]")


def level_task_name(index: int, total: int, level: Level, document: str) -> str:
    """The approval subtask's name; its prefix is how the connector finds the level again."""
    return f"[Approval level {index} of {total}] {level.name}: approve {document}"


def level_of(subtask: Mapping[str, Any]) -> int | None:
    match = LEVEL_NAME.match(str(subtask.get("name") or ""))
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class LevelState:
    index: int
    level: Level
    task_gid: str = ""
    status: str = "missing"  # missing | pending | approved | rejected | changes_requested
    approved_at: datetime | None = None
    approved_by: str = ""

    def line(self) -> str:
        who = f" by {self.approved_by}" if self.approved_by and self.status == "approved" else ""
        return f"level {self.index} ({self.level.name}): {self.status}{who}"


def level_states(
    tier: Tier, subtasks: Iterable[Mapping[str, Any]], approvals: Mapping[str, tuple[datetime | None, str]]
) -> list[LevelState]:
    """The state of each of the tier's levels, read off the task's subtasks. `approvals` is
    {subtask gid: (Asana's time of its approval, approver gid)} for the approved ones."""
    by_level: dict[int, Mapping[str, Any]] = {}
    for sub in subtasks:
        index = level_of(sub)
        if index is not None:
            by_level.setdefault(index, sub)
    out = []
    for i, level in enumerate(tier.levels, start=1):
        sub = by_level.get(i)
        if sub is None:
            out.append(LevelState(i, level))
            continue
        status = str(sub.get("approval_status") or ("approved" if sub.get("completed") else "pending"))
        at, by = approvals.get(str(sub.get("gid")), (None, ""))
        out.append(LevelState(i, level, str(sub.get("gid")), status, at, by))
    return out


def levels_problems(
    states: list[LevelState],
    written_at: datetime | None,
    *,
    allowed: Mapping[int, set[str] | None],
    blocked: set[str],
) -> list[tuple[int, str]]:
    """Why the levels do not (yet) allow a release (empty: every level approved, after the last guarded
    write, by one of its approvers, and no person approving two levels or a level of their own bill).
    Each problem is (level index, why); a level whose approval does not count must be approved again."""
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for s in states:
        if s.status != "approved":
            problems.append((s.index, f"level {s.index} ({s.level.name}) is {s.status}"))
            continue
        if s.approved_at is None or (written_at is not None and s.approved_at <= written_at):
            problems.append(
                (s.index, f"level {s.index} ({s.level.name}) was approved before the current values")
            )
            continue
        if s.approved_by in blocked:
            problems.append(
                (s.index, f"level {s.index} ({s.level.name}) was approved by the bill's own creator")
            )
            continue
        permitted = allowed.get(s.index)
        if permitted is not None and s.approved_by not in permitted:
            problems.append(
                (
                    s.index,
                    f"level {s.index} ({s.level.name}) was approved by {s.approved_by or 'an unknown user'}, "
                    "who is not one of its approvers",
                )
            )
            continue
        if s.approved_by and s.approved_by in seen:
            problems.append(
                (
                    s.index,
                    f"level {s.index} ({s.level.name}) was approved by the same person as level "
                    f"{seen[s.approved_by]}",
                )
            )
            continue
        if s.approved_by:
            seen[s.approved_by] = s.index
    return problems


# ---- segregation of duties ------------------------------------------------------------------------


def level_approvers(level: Level, team_members: Iterable[str] | None = None) -> set[str] | None:
    """The Asana users allowed to approve a level (None: anyone — no list and no team given)."""
    if not level.approvers and not level.team_gid:
        return None
    return set(level.approvers) | set(team_members or ())


def sod_problem(
    sod: SegregationOfDuties,
    approver: str,
    *,
    creators: set[str],
    requester: str = "",
    allowed: set[str] | None = None,
) -> str | None:
    """Why the approver may not release this document (None: they may). `creators`: the Asana users the
    document's creator maps to; `allowed`: the flow's allowed approvers (with the team's members) or
    None for "anyone"."""
    if not sod.enabled:
        return None
    if not approver:
        return "segregation of duties: Asana does not say who approved"
    if sod.block_creator and approver in creators:
        return "segregation of duties: the approver entered this bill in Acumatica"
    if sod.block_requester and requester and approver == requester:
        return "segregation of duties: the approver requested this purchase"
    if allowed is not None and approver not in allowed:
        return f"segregation of duties: Asana user {approver} is not an allowed approver for this flow"
    return None


def sod_allowed(sod: SegregationOfDuties, team_members: Iterable[str] | None = None) -> set[str] | None:
    if not sod.allowed_approvers and not sod.allowed_team_gid:
        return None
    return set(sod.allowed_approvers) | set(team_members or ())


# ---- duplicates -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateMatch:
    reference: str
    why: str


def as_day(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _norm_ref(value: Any) -> str:
    return re.sub(r"[\s\-_/.]", "", str(value or "")).upper()


def duplicate_matches(
    bill: Mapping[str, Any], others: Iterable[Mapping[str, Any]], *, window_days: int
) -> list[DuplicateMatch]:
    """The tenant's other bills this one likely duplicates: same vendor and vendor reference (ignoring
    spaces, dashes and case), or same vendor and amount with dates within `window_days`."""
    out = []
    vendor = str(bill.get("Vendor") or "")
    ref = str(bill.get("ReferenceNbr") or "")
    vref = _norm_ref(bill.get("VendorRef"))
    amount = amount_of(bill.get("Amount"))
    day = as_day(bill.get("Date"))
    for other in others:
        other_ref = str(other.get("ReferenceNbr") or "")
        if other_ref == ref or str(other.get("Vendor") or "") != vendor:
            continue
        if str(other.get("Status") or "") in ("Voided", "Canceled", "Cancelled", "Rejected"):
            continue
        if vref and _norm_ref(other.get("VendorRef")) == vref:
            out.append(
                DuplicateMatch(
                    other_ref, f"same vendor {vendor} and vendor reference {bill.get('VendorRef')}"
                )
            )
            continue
        other_day = as_day(other.get("Date"))
        if (
            amount is not None
            and amount_of(other.get("Amount")) == amount
            and day is not None
            and other_day is not None
            and abs((day - other_day).days) <= window_days
        ):
            out.append(
                DuplicateMatch(
                    other_ref, f"same vendor {vendor} and amount {amount:,.2f} within {window_days} days"
                )
            )
    return out
