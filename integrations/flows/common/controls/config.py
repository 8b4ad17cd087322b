"""The controls block of a flow (`Flow.options["controls"]`), parsed and validated: a documents flow
takes every part; a purchase-request flow only `segregation_of_duties` (validation_errors(kind=…)).

Shape (every part optional; a missing or `enabled: false` part is off — the default):

    {
      "segregation_of_duties": {"enabled": true, "block_creator": true, "block_requester": true,
                                "creator_field": "Document.CreatedByID",
                                "allowed_approvers": ["<asana user gid>", ...], "allowed_team_gid": ""},
      "tiers": {"enabled": true, "tiers": [
          {"name": "small", "above": 0, "up_to": 5000, "branch": "", "vendor_class": "",
           "levels": [{"name": "PM", "approvers": ["<gid>"], "team_gid": ""}]}, ...]},
      "duplicates": {"enabled": true, "window_days": 30, "field_gid": "<text custom field gid>"},
      "escalation": {"enabled": true, "pending_business_days": 3, "due_within_days": 2,
                     "recipients": ["ap-lead@example.com"], "holidays": ["2026-12-25"]}
    }

`validation_errors(raw, known_users)` returns messages naming the field (`controls.tiers.tiers[1].up_to`);
`parse(raw)` gives the typed settings the flows use (call it only on a validated block).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

_GID = re.compile(r"^\d{1,32}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PARTS = ("segregation_of_duties", "tiers", "duplicates", "escalation")


@dataclass(frozen=True)
class Level:
    name: str
    approvers: tuple[str, ...] = ()
    team_gid: str = ""


@dataclass(frozen=True)
class Tier:
    name: str
    above: Decimal = Decimal(0)
    up_to: Decimal | None = None  # None: no upper bound
    branch: str = ""
    vendor_class: str = ""
    levels: tuple[Level, ...] = ()

    def holds(self, amount: Decimal) -> bool:
        return amount > self.above and (self.up_to is None or amount <= self.up_to)

    def describe(self) -> str:
        upper = f"≤ {self.up_to:,.2f}" if self.up_to is not None else "no upper bound"
        scope = "".join(
            f", {k} {v}" for k, v in (("branch", self.branch), ("vendor class", self.vendor_class)) if v
        )
        return f"{self.name} (> {self.above:,.2f}, {upper}{scope}): " + " + ".join(
            lv.name for lv in self.levels
        )


@dataclass(frozen=True)
class SegregationOfDuties:
    enabled: bool = False
    block_creator: bool = True
    block_requester: bool = True
    creator_field: str = "Document.CreatedByID"
    allowed_approvers: tuple[str, ...] = ()
    allowed_team_gid: str = ""


@dataclass(frozen=True)
class Duplicates:
    enabled: bool = False
    window_days: int = 30
    field_gid: str = ""  # a text custom field that shows "possible duplicate of …" (optional)


@dataclass(frozen=True)
class Escalation:
    enabled: bool = False
    pending_business_days: int = 3
    due_within_days: int = 2
    recipients: tuple[str, ...] = ()
    holidays: frozenset[date] = frozenset()


@dataclass(frozen=True)
class Controls:
    sod: SegregationOfDuties = field(default_factory=SegregationOfDuties)
    tiers_enabled: bool = False
    tiers: tuple[Tier, ...] = ()
    duplicates: Duplicates = field(default_factory=Duplicates)
    escalation: Escalation = field(default_factory=Escalation)

    @property
    def any_enabled(self) -> bool:
        return self.sod.enabled or self.tiers_enabled or self.duplicates.enabled or self.escalation.enabled


OFF = Controls()


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _gids(values: Any) -> tuple[str, ...]:
    return tuple(str(v).strip() for v in (values or ()) if str(v).strip())


def parse(raw: Mapping[str, Any] | None) -> Controls:
    """Typed settings of a (validated) controls block; None or {} is everything off."""
    raw = raw or {}
    sod_raw = raw.get("segregation_of_duties") or {}
    sod = SegregationOfDuties(
        enabled=bool(sod_raw.get("enabled")),
        block_creator=bool(sod_raw.get("block_creator", True)),
        block_requester=bool(sod_raw.get("block_requester", True)),
        creator_field=str(sod_raw.get("creator_field") or "Document.CreatedByID"),
        allowed_approvers=_gids(sod_raw.get("allowed_approvers")),
        allowed_team_gid=str(sod_raw.get("allowed_team_gid") or ""),
    )
    tiers_raw = raw.get("tiers") or {}
    tiers = tuple(
        Tier(
            name=str(t.get("name") or f"tier {i + 1}"),
            above=_dec(t.get("above") or 0),
            up_to=None if t.get("up_to") in (None, "") else _dec(t["up_to"]),
            branch=str(t.get("branch") or ""),
            vendor_class=str(t.get("vendor_class") or ""),
            levels=tuple(
                Level(
                    name=str(lv.get("name") or f"level {j + 1}"),
                    approvers=_gids(lv.get("approvers")),
                    team_gid=str(lv.get("team_gid") or ""),
                )
                for j, lv in enumerate(t.get("levels") or ())
            ),
        )
        for i, t in enumerate(tiers_raw.get("tiers") or ())
    )
    dup_raw = raw.get("duplicates") or {}
    esc_raw = raw.get("escalation") or {}
    return Controls(
        sod=sod,
        tiers_enabled=bool(tiers_raw.get("enabled")) and bool(tiers),
        tiers=tiers,
        duplicates=Duplicates(
            enabled=bool(dup_raw.get("enabled")),
            window_days=int(dup_raw.get("window_days") or 30),
            field_gid=str(dup_raw.get("field_gid") or ""),
        ),
        escalation=Escalation(
            enabled=bool(esc_raw.get("enabled")),
            pending_business_days=int(esc_raw.get("pending_business_days") or 3),
            due_within_days=int(esc_raw.get("due_within_days") or 2),
            recipients=tuple(str(r) for r in esc_raw.get("recipients") or ()),
            holidays=frozenset(date.fromisoformat(str(d)) for d in esc_raw.get("holidays") or ()),
        ),
    )


def controls_of(options: Mapping[str, Any] | None) -> Controls:
    """The controls of a flow's options; a block that does not validate counts as off (config apply and
    the console refuse to save one, so this only guards against hand-edited rows)."""
    raw = (options or {}).get("controls")
    if not raw or validation_errors(raw):
        return OFF
    return parse(raw)


# ---- validation ---------------------------------------------------------------------------------------


def _check_gids(where: str, values: Any, known: set[str] | None, errs: list[str]) -> None:
    if values is None:
        return
    if not isinstance(values, list):
        errs.append(f"{where}: expected a list of Asana user GIDs")
        return
    for k, gid in enumerate(values):
        text = str(gid).strip()
        if not _GID.match(text):
            errs.append(f"{where}[{k}]: {gid!r} is not an Asana GID (digits only)")
        elif known is not None and text not in known:
            errs.append(f"{where}[{k}]: unknown Asana user {text} (not in this tenant's user mappings)")


def _number(where: str, value: Any, errs: list[str]) -> Decimal | None:
    try:
        number = _dec(value)
    except (InvalidOperation, ValueError):
        errs.append(f"{where}: {value!r} is not a number")
        return None
    if number < 0 or not number.is_finite():
        errs.append(f"{where}: must be a number ≥ 0")
        return None
    return number


def _positive_int(where: str, value: Any, errs: list[str]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errs.append(f"{where}: expected a whole number ≥ 0, got {value!r}")


# A purchase request's subtasks are its PO lines: approval-level subtasks, the duplicate hold and the
# escalation sweep are for bills / purchase orders; its flow applies segregation of duties only.
PURCHASE_REQUESTS_KIND = "asana_purchase_requests"
PURCHASE_REQUEST_PARTS = ("segregation_of_duties",)


def validation_errors(
    raw: Any, known_users: Iterable[str] | None = None, *, kind: str | None = None
) -> list[str]:
    """Every problem of a controls block, each naming its field (`controls.…`). Empty: valid.
    `known_users`: the Asana user GIDs the tenant knows (user mappings); None skips that check.
    `kind`: the flow's kind, when known (a purchase-request flow accepts only segregation of duties)."""
    known = {str(g) for g in known_users} if known_users is not None else None
    if raw in (None, {}):
        return []
    if not isinstance(raw, dict):
        return ["controls: expected an object"]
    errs: list[str] = []
    for key in raw:
        if key not in PARTS:
            errs.append(f"controls.{key}: unknown control (expected one of {', '.join(PARTS)})")
        elif kind == PURCHASE_REQUESTS_KIND and key not in PURCHASE_REQUEST_PARTS:
            part = raw.get(key)
            if isinstance(part, dict) and part.get("enabled"):
                errs.append(
                    f"controls.{key}: a purchase-request flow applies segregation of duties only "
                    "(its subtasks are the PO's lines); set this control on a bills or purchase orders flow"
                )
    sod = raw.get("segregation_of_duties")
    if sod is not None:
        if not isinstance(sod, dict):
            errs.append("controls.segregation_of_duties: expected an object")
        else:
            _check_gids(
                "controls.segregation_of_duties.allowed_approvers", sod.get("allowed_approvers"), known, errs
            )
            team = sod.get("allowed_team_gid")
            if team and not _GID.match(str(team)):
                errs.append(f"controls.segregation_of_duties.allowed_team_gid: {team!r} is not an Asana GID")
    tiers = raw.get("tiers")
    if tiers is not None:
        errs.extend(_tier_errors(tiers, known))
    dup = raw.get("duplicates")
    if dup is not None:
        if not isinstance(dup, dict):
            errs.append("controls.duplicates: expected an object")
        else:
            _positive_int("controls.duplicates.window_days", dup.get("window_days"), errs)
            if dup.get("field_gid") and not _GID.match(str(dup["field_gid"])):
                errs.append(f"controls.duplicates.field_gid: {dup['field_gid']!r} is not an Asana GID")
    esc = raw.get("escalation")
    if esc is not None:
        errs.extend(_escalation_errors(esc))
    return errs


def _tier_errors(tiers: Any, known: set[str] | None) -> list[str]:
    errs: list[str] = []
    if not isinstance(tiers, dict):
        return ["controls.tiers: expected an object with `enabled` and `tiers`"]
    items = tiers.get("tiers") or []
    if not isinstance(items, list):
        return ["controls.tiers.tiers: expected a list"]
    if tiers.get("enabled") and not items:
        errs.append("controls.tiers.tiers: tiers are enabled but none is defined")
    ranges: list[tuple[int, str, str, Decimal, Decimal | None]] = []
    for i, tier in enumerate(items):
        where = f"controls.tiers.tiers[{i}]"
        if not isinstance(tier, dict):
            errs.append(f"{where}: expected an object")
            continue
        above = _number(f"{where}.above", tier.get("above") or 0, errs)
        up_to = None
        if tier.get("up_to") not in (None, ""):
            up_to = _number(f"{where}.up_to", tier["up_to"], errs)
            if up_to is not None and above is not None and up_to <= above:
                errs.append(f"{where}.up_to: {up_to} is not above `above` ({above})")
                up_to = None
        levels = tier.get("levels") or []
        if not isinstance(levels, list) or not levels:
            errs.append(f"{where}.levels: a tier needs at least one approval level")
            levels = []
        for j, level in enumerate(levels):
            lw = f"{where}.levels[{j}]"
            if not isinstance(level, dict):
                errs.append(f"{lw}: expected an object")
                continue
            _check_gids(f"{lw}.approvers", level.get("approvers"), known, errs)
            team = level.get("team_gid")
            if team and not _GID.match(str(team)):
                errs.append(f"{lw}.team_gid: {team!r} is not an Asana GID")
            if not (level.get("approvers") or team):
                errs.append(f"{lw}: no approver (give `approvers` or `team_gid`)")
        if above is not None:
            ranges.append(
                (i, str(tier.get("branch") or ""), str(tier.get("vendor_class") or ""), above, up_to)
            )
    for a in range(len(ranges)):
        for b in range(a + 1, len(ranges)):
            i, br1, vc1, lo1, hi1 = ranges[a]
            j, br2, vc2, lo2, hi2 = ranges[b]
            if (br1, vc1) != (br2, vc2):
                continue
            if (hi1 is None or lo2 < hi1) and (hi2 is None or lo1 < hi2):
                errs.append(
                    f"controls.tiers.tiers[{j}]: overlaps controls.tiers.tiers[{i}] "
                    f"(amounts > {max(lo1, lo2)} fall into both)"
                )
    return errs


def _escalation_errors(esc: Any) -> list[str]:
    if not isinstance(esc, dict):
        return ["controls.escalation: expected an object"]
    errs: list[str] = []
    _positive_int("controls.escalation.pending_business_days", esc.get("pending_business_days"), errs)
    _positive_int("controls.escalation.due_within_days", esc.get("due_within_days"), errs)
    for k, addr in enumerate(esc.get("recipients") or []):
        if not _EMAIL.match(str(addr)):
            errs.append(f"controls.escalation.recipients[{k}]: {addr!r} is not an e-mail address")
    if esc.get("enabled") and not esc.get("recipients"):
        errs.append("controls.escalation.recipients: escalation is enabled but has no recipient")
    for k, day in enumerate(esc.get("holidays") or []):
        try:
            date.fromisoformat(str(day))
        except ValueError:
            errs.append(f"controls.escalation.holidays[{k}]: {day!r} is not a date (YYYY-MM-DD)")
    return errs
