"""The PO status flow (Sage 100 PO → the request's task) as the registry sees it."""

from integrations.flows.common.entry import FlowEntry
from integrations.flows.po_status import tasks
from integrations.flows.po_status.replay import OPERATIONS, POStatusReplay

ENTRY = FlowEntry(
    label="Sage 100 PO status (poll)",
    ensure_schedules=tasks.ensure_schedules,
    run_once=tasks.run_once,
    replay=POStatusReplay(),
    replay_operations=OPERATIONS,
)
