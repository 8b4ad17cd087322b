"""The flows' entries in one place: which flow runs for each Flow.Kind (its schedules, its Asana event
handler, its replay), the recurring jobs that belong to no single flow, and each system's connection check.

Filled with imported callables, never dotted strings, so a renamed module fails at import (and in
tests/flows/test_registry.py), not in a webhook at run time. Adding a flow: its package with an
entry.py, a Flow.Kind value, and one line in FLOWS.
"""

from __future__ import annotations

from collections.abc import Callable

from audit import retention
from integrations.acumatica.check import check_acumatica
from integrations.asana.check import check_asana
from integrations.base.checks import CheckResult
from integrations.flows.approvals.entry import ENTRY as approvals
from integrations.flows.common.entry import FlowEntry
from integrations.flows.common.replay import ReplayHandler
from integrations.flows.documents.entry import ENTRY as documents
from integrations.flows.inbound import events as inbound_events
from integrations.flows.inbound import tasks as inbound_tasks
from integrations.flows.operations import alerts, escalation, health
from integrations.flows.po_status.entry import ENTRY as po_status
from integrations.flows.purchase_requests.entry import ENTRY as purchase_requests
from integrations.flows.reconciliation import tasks as reconciliation_tasks
from integrations.flows.roster.entry import ENTRY as roster
from integrations.models import Flow
from integrations.sage100.check import check_sage100

FLOWS: dict[str, FlowEntry] = {
    Flow.Kind.ACUMATICA_BILLS: documents,
    Flow.Kind.ACUMATICA_PURCHASE_ORDERS: documents,
    Flow.Kind.ASANA_APPROVALS: approvals,
    Flow.Kind.ACUMATICA_EMPLOYEES: roster,
    Flow.Kind.ASANA_PURCHASE_REQUESTS: purchase_requests,
    Flow.Kind.SAGE100_PO_STATUS: po_status,
}

# Recurring jobs of the inbound side and of operations (each returns one line per schedule touched).
AREAS: tuple[tuple[str, Callable[[], list[str] | str]], ...] = (
    ("inbound (webhook watchdog, approval catch-up poll)", inbound_tasks.ensure_schedules),
    ("inbound events (unqueued and stuck events queued, every minute)", inbound_events.ensure_schedules),
    ("alerts (health sweep)", alerts.ensure_schedule),
    ("audit retention (daily purge by kind and age)", retention.ensure_schedule),
    ("health (runs abandoned by a stopped worker)", health.ensure_schedule),
    ("finance controls (stuck-approval escalation, hourly)", escalation.ensure_schedule),
    (
        "reconciliation (Acumatica ↔ Asana ↔ Sage 100, daily per tenant)",
        reconciliation_tasks.ensure_schedules,
    ),
)

# system → check(connection) -> [CheckResult]: read-only calls that say what was verified and how.
CHECKS: dict[str, Callable[[object], list[CheckResult]]] = {
    "acumatica": check_acumatica,
    "asana": check_asana,
    "sage100": check_sage100,
}


def entries() -> list[FlowEntry]:
    """Each flow entry once (the documents entry serves two kinds)."""
    unique: list[FlowEntry] = []
    for entry in FLOWS.values():
        if not any(entry is seen for seen in unique):
            unique.append(entry)
    return unique


def task_event_handler(kind: str) -> Callable[..., str]:
    entry = FLOWS.get(kind)
    if entry is None or entry.handle_task_change is None:
        raise LookupError(f"flow kind {kind!r} has no Asana task event handler")
    return entry.handle_task_change


def replay_handler_for_operation(operation: str) -> ReplayHandler | None:
    for entry in entries():
        if entry.replay is not None and operation in entry.replay_operations:
            return entry.replay
    return None


def replay_handler_for_kind(kind: str) -> ReplayHandler | None:
    entry = FLOWS.get(kind)
    return entry.replay if entry is not None else None


def replay_operations() -> list[str]:
    return sorted({op for entry in entries() if entry.replay is not None for op in entry.replay_operations})


def ensure_all() -> list[str]:
    """Create or update every schedule; returns one line per schedule touched."""
    lines: list[str] = []
    jobs = [(e.label, e.ensure_schedules) for e in entries() if e.ensure_schedules is not None]
    for label, ensure in [*jobs, *AREAS]:
        result = ensure()
        items = result if isinstance(result, list) else [result]
        lines.extend(f"{label}: {item}" for item in items)
    return lines
