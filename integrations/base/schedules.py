"""One way to keep a django-q2 schedule in place: idempotent, by name (each flow's `ensure_schedules`).

    ensure("alerts:sweep", "integrations.flows.operations.alerts.sweep", minutes=5)
    ensure("employee-roster", "integrations.flows.roster.tasks.sync_roster_all", daily=True)

A schedule of that name is created, or its function and timing are brought back to what the code
says (an operator's change in the console is overwritten at the next `ensure`); it repeats for ever.
Returns one line for the set-up report, e.g. "alerts:sweep every 5 min: created".
"""

from __future__ import annotations

from typing import Any


def ensure(
    name: str,
    func: str,
    *,
    minutes: int | None = None,
    hourly: bool = False,
    daily: bool = False,
    args: Any = None,
) -> str:
    from django_q.models import Schedule

    if sum((minutes is not None, hourly, daily)) != 1:
        raise ValueError(f"schedule {name}: give exactly one of minutes, hourly or daily")
    if hourly:
        kind, every = Schedule.HOURLY, "hourly"
    elif daily:
        kind, every = Schedule.DAILY, "daily"
    else:
        kind, every = Schedule.MINUTES, f"every {minutes} min"
    defaults: dict[str, Any] = {"func": func, "schedule_type": kind, "minutes": minutes, "repeats": -1}
    if args is not None:
        defaults["args"] = repr(args)
    _obj, created = Schedule.objects.update_or_create(name=name, defaults=defaults)
    return f"{name} {every}: {'created' if created else 'kept'}"
