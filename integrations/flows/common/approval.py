"""What "approved" means for a flow, shared by every flow that acts on an approval (documents, approvals,
purchase requests): the flow's approval rule read off a task, and the document statuses that say an
approval has already been acted on."""

from __future__ import annotations

from typing import Any

from integrations.asana import fields as cf
from integrations.asana.shapes import approval_outcome
from integrations.models import Flow, RecordLink

DONE_STATUSES = {
    RecordLink.Kind.BILL: frozenset({"Open", "Closed"}),
    RecordLink.Kind.PURCHASE_ORDER: frozenset({"Open", "Completed", "Closed"}),
}


def approval_verdict(flow: Flow, task: dict[str, Any]) -> tuple[bool, str]:
    """(approved?, why) under the flow's rule. An approval task's `completed` is also true when it was
    rejected or changes were requested (reference/asana.md §4.4): its approval_status decides."""
    outcome = approval_outcome(task)
    rule = flow.approval_rule
    if rule == Flow.ApprovalRule.ENUM_OPTION:
        value = cf.decode_custom_fields(task).get(flow.approval_field_gid)
        ok = bool(flow.approval_option_gid) and value == flow.approval_option_gid
        return ok, "approval field set to the approved option" if ok else "approval field not approved"
    if rule == Flow.ApprovalRule.APPROVAL_STATUS:
        if outcome is None:
            return False, "not an approval task"
        return outcome == "approved", f"approval status {outcome}"
    if outcome is not None:  # rule "completed" on an approval task
        return outcome == "approved", f"approval status {outcome}"
    return bool(task.get("completed")), "completed" if task.get("completed") else "not completed"
