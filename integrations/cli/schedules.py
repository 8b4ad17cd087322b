"""`connector schedules`: create or refresh every recurring job the worker runs."""

from __future__ import annotations

from integrations.flows.registry import ensure_all

NAME = "schedules"
HELP = "Create or refresh every schedule (polls, drift checks, webhook watchdog, roster, Sage, alerts)."


def add_arguments(parser) -> None:
    pass


def run(options, out) -> int:
    lines = ensure_all()
    for line in lines:
        out.write(line)
    out.success(f"{len(lines)} schedule(s) in place; `python manage.py qcluster` runs them.")
    return 0
