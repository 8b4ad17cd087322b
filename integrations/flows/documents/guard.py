"""Changed after approval: a guarded value of a document whose task is approved (not yet released)
changes in the ERP. The new values, the approval reset and a comment naming old → new go out in one
visible step, and the console lists it. Even without this, an approval older than the write never binds
(approval_binding.py): this is the courtesy that asks the approver again.
"""

from __future__ import annotations

import logging
from typing import Any

from audit.models import AuditEntry
from audit.recorder import record_entry
from integrations.base import errors
from integrations.models import Flow, RecordLink

log = logging.getLogger(__name__)


class ApprovalGuard:
    """An update that changes a guarded value of a document whose task is approved but not released:
    the new values, the approval reset and a comment naming old → new go out in one visible step, and
    the console lists it as "changed after approval". (Even without this, an approval older than the
    write never binds: approval_binding.py.)"""

    def __init__(self, sync: Any, link: RecordLink, record: Any):
        self.sync, self.link, self.record = sync, link, record
        self.reset: list[str] = []
        self.approvals_flow: Flow | None = None

    def changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        from integrations.flows.common import binding
        from integrations.flows.common.approval import DONE_STATUSES, approval_verdict

        link, record = self.link, self.record
        if record is None or not link.guarded_values or record.get("Status") in DONE_STATUSES[link.kind]:
            return changes
        paths = binding.guarded_paths(link.kind, self.sync.flow.options)
        new = binding.guarded_values(record, self.sync._mapped, paths)
        if not new or new == link.guarded_values:
            return changes
        self.approvals_flow = (
            Flow.objects.filter(
                tenant=self.sync.tenant,
                kind=Flow.Kind.ASANA_APPROVALS,
                enabled=True,
                asana_project_gid=self.sync.settings.project_gid,
            )
            .order_by("pk")
            .first()
        )
        if self.approvals_flow is None:
            return changes
        task = self.sync.asana.get_task(link.asana_task_gid)
        approved, _why = approval_verdict(self.approvals_flow, task)
        if not approved:
            return changes
        self.reset = binding.describe_changes(link.guarded_values, new)
        return binding.merge_changes(changes, binding.approval_reset_changes(self.approvals_flow, task))

    def written(self, answer: dict[str, Any] | None, event: Any) -> None:
        changed, _previous = self.sync._record_guarded(
            self.link, self.record, answer, "update", approval_reset=bool(self.reset)
        )
        if changed and _previous:
            from integrations.flows.documents import controls as doc_controls

            doc_controls.after_guarded_change(self.sync, self.link, self.record)
        if not self.reset:
            return
        text = "; ".join(self.reset)
        comment = (
            f"Changed in Acumatica after approval: {text}. The approval was reset: please review the new "
            "values and approve again. (ml-connector)"
        )
        try:
            self.sync.asana.add_comment(self.link.asana_task_gid, comment)
        except errors.ConnectorError as exc:
            log.warning("could not comment on task %s: %s", self.link.asana_task_gid, exc)
        RecordLink.objects.filter(pk=self.link.pk).update(approved_snapshot={})
        self.link.approved_snapshot = {}
        record_entry(
            tenant=self.sync.tenant,
            flow=self.sync.flow,
            record_link=self.link,
            operation="changed_after_approval",
            status=AuditEntry.Status.SUCCEEDED,
            record_key=f"{self.sync.doc.entity}:{self.link.acumatica_type}/{self.link.acumatica_ref}",
            payload={"changes": self.reset, "approval_reset": True},
            inbound_event=event,
            error=f"changed after approval: {text}; approval reset and a new approval asked for",
        )
