"""The purchase-request flow (Asana request → Sage 100 PO) as the registry sees it."""

from integrations.flows.common.entry import FlowEntry
from integrations.flows.purchase_requests import tasks
from integrations.flows.purchase_requests.replay import OPERATIONS, PurchaseRequestReplay

ENTRY = FlowEntry(
    label="Sage 100 purchase requests (catch-up poll)",
    ensure_schedules=tasks.ensure_schedules,
    run_once=tasks.run_once,
    handle_task_change=tasks.handle_task_change,
    replay=PurchaseRequestReplay(),
    replay_operations=OPERATIONS,
)
