"""Business days over a holiday calendar, and the escalation thresholds a pending approval crossed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from integrations.flows.common.controls.config import Escalation


def is_business_day(day: date, holidays: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in set(holidays)


def business_days_between(start: date, end: date, holidays: Iterable[date] = ()) -> int:
    """Business days that have passed from `start` to `end`: the business days after `start` up to and
    including `end` (a request on Friday is 1 business day old on Monday)."""
    holidays = frozenset(holidays)
    if end <= start:
        return 0
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_business_day(day, holidays):
            count += 1
    return count


@dataclass(frozen=True)
class Threshold:
    key: str  # the dedupe key: one alert per task per threshold (and per approval request)
    message: str


def crossed_thresholds(
    esc: Escalation,
    *,
    pending_since: date,
    today: date,
    due_date: date | None = None,
    discount_date: date | None = None,
) -> list[Threshold]:
    """Which thresholds a still-pending approval crossed today."""
    out = []
    waited = business_days_between(pending_since, today, esc.holidays)
    if esc.pending_business_days and waited >= esc.pending_business_days:
        out.append(
            Threshold(
                f"pending-{esc.pending_business_days}bd",
                f"pending for {waited} business days (limit {esc.pending_business_days})",
            )
        )
    for key, label, day in (
        ("discount", "early-payment discount date", discount_date),
        ("due", "due date", due_date),
    ):
        if day is None:
            continue
        left = (day - today).days
        if left <= esc.due_within_days:
            when = "passed" if left < 0 else ("today" if left == 0 else f"in {left} days")
            out.append(Threshold(f"{key}-{day.isoformat()}", f"the {label} {day.isoformat()} is {when}"))
    return out
