"""The employee roster flow (Acumatica employees → Asana users) as the registry sees it. A roster pass is
itself re-runnable (`connector roster`), so it has no per-record replay."""

from integrations.flows.common.entry import FlowEntry
from integrations.flows.roster import tasks

ENTRY = FlowEntry(
    label="employee roster (daily)", ensure_schedules=tasks.ensure_schedules, run_once=tasks.run_once
)
