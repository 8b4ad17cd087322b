"""One pending retry per record: a django-q2 ONCE schedule named after the record it retries.

django-q2 keeps a ONCE schedule created with repeats=1 after it fired (repeats=0, never deleted), and
its own `schedule()` refuses a name that exists. So "a schedule with this name exists" does not mean
"a retry is pending": checking only the name dropped every later retry of the same record, silently.

A retry is pending when a schedule of that name has not fired yet AND is not due yet. One that is due
may be the very schedule whose task is asking for a retry now (the scheduler marks it fired only after
its task was handed over, in sync mode even after the task ran; with Redis a worker can start it before
the scheduler commits), so it does not count: a new one is created. Fired schedules of that name are
deleted on the way. At worst two retries of one record run, a moment apart; the tasks are idempotent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone


def schedule_retry(func: str, *args: Any, delay: float, name: str) -> bool:
    """Schedule `func(*args)` once, `delay` seconds from now, unless a retry named `name` is still to
    come. Returns whether a schedule was created."""
    from django_q.models import Schedule

    now = timezone.now()
    if Schedule.objects.filter(name=name, next_run__gt=now).exclude(repeats=0).exists():
        return False  # still to come: it runs after this failure, which is all a retry needs
    Schedule.objects.filter(name=name, repeats=0).delete()  # fired ones, kept by django-q2
    Schedule.objects.create(
        name=name,
        func=func,
        args=repr(tuple(args)),
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=now + timedelta(seconds=delay),
    )
    return True
