"""Every recurring job of ml-connector, created or refreshed in one idempotent call.

Each area owns its schedules (`ensure_schedules()` in its tasks module); this module only lists the
areas, so `connector schedules` and `connector demo` (and an operator after adding a flow) set up
everything the worker should run.
"""

from __future__ import annotations

import importlib

AREAS = (
    ("documents (Acumatica → Asana polls, drift checks)", "integrations.tasks.documents", "ensure_schedules"),
    (
        "approvals (webhook watchdog, catch-up poll, roster)",
        "integrations.tasks.approvals",
        "ensure_schedules",
    ),
    ("Sage 100 (purchase requests, PO status)", "integrations.tasks.sage100", "ensure_schedules"),
    ("alerts (health sweep)", "audit.alerts", "ensure_schedule"),
    ("audit retention (daily purge by kind and age)", "audit.retention", "ensure_schedule"),
    (
        "inbound events (unqueued and stuck events queued, every minute)",
        "integrations.tasks.events",
        "ensure_schedules",
    ),
    ("health (runs abandoned by a stopped worker)", "integrations.health", "ensure_schedule"),
    (
        "reconciliation (Acumatica ↔ Asana ↔ Sage 100, daily per tenant)",
        "integrations.flows.reconciliation.tasks",
        "ensure_schedules",
    ),
)


def ensure_all() -> list[str]:
    """Create or update every schedule; returns one line per schedule touched."""
    lines: list[str] = []
    for label, module, func in AREAS:
        result = getattr(importlib.import_module(module), func)()
        items = result if isinstance(result, list) else [result]
        lines.extend(f"{label}: {item}" for item in items)
    return lines
