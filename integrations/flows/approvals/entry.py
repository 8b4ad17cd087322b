"""The approvals flow (Asana approval → Acumatica release) as the registry sees it. Its catch-up poll and
webhooks are the inbound side's (integrations/flows/inbound/)."""

from integrations.flows.approvals import release
from integrations.flows.approvals.replay import OPERATIONS, ApprovalReplay
from integrations.flows.common.entry import FlowEntry
from integrations.flows.inbound.tasks import run_approvals_once

ENTRY = FlowEntry(
    label="approvals (Asana → Acumatica release)",
    handle_task_change=release.handle_task_change,
    run_once=run_approvals_once,
    replay=ApprovalReplay(),
    replay_operations=OPERATIONS,
)
