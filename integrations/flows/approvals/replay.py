"""Replay for the approvals flow: Asana approval → Acumatica release (operations bill.release,
purchase_order.release, bill.writeback, purchase_order.writeback). The preview reads the task's approval
verdict and the document's status; execute calls the flow's own `handle_task_change`, behind every guard
of the approval binding."""

from __future__ import annotations

from audit.models import AuditEntry, SyncRun
from integrations.base import errors
from integrations.flows import clients as flow_clients
from integrations.flows.approvals import release as approvals
from integrations.flows.common.replay import Preview
from integrations.models import Flow, RecordLink

OPERATIONS = ("bill.release", "purchase_order.release", "bill.writeback", "purchase_order.writeback")


class ApprovalReplay:
    name = "approvals"

    def _flow(self, link: RecordLink) -> Flow:
        flow = Flow.objects.filter(tenant=link.tenant, kind=Flow.Kind.ASANA_APPROVALS, enabled=True).first()
        if flow is None:
            raise errors.ConfigurationError("the tenant has no enabled approvals flow")
        return flow

    def preview(self, link: RecordLink, entry: AuditEntry | None) -> Preview:
        flow = self._flow(link)
        clients = flow_clients.clients_for(link.tenant)
        key = f"{link.acumatica_type} {link.acumatica_ref}".strip()
        if not link.asana_task_gid:
            return Preview(link.pk, key, "refuse", runnable=False, reason="the record has no Asana task")
        task = clients.asana.get_task(link.asana_task_gid)
        approved, why = approvals.approval_verdict(flow, task)
        if link.kind == RecordLink.Kind.BILL:
            document = clients.acumatica.get_bill(link.acumatica_type, link.acumatica_ref, expand=None)
        else:
            document = clients.acumatica.get_purchase_order(
                link.acumatica_type, link.acumatica_ref, expand=None
            )
        status = document.get("Status")
        done = status in approvals.DONE_STATUSES.get(link.kind, ())
        if not approved:
            return Preview(link.pk, key, "skip", summary=f"not approved ({why}): only write-back would run")
        if done:
            return Preview(
                link.pk, key, "skip", {"Status": [status, status]}, f"already {status}: no release"
            )
        return Preview(
            link.pk,
            key,
            "release",
            {"Status": [status, "Open (released)"]},
            f"approved ({why}): the document would be released, behind the flow's guards",
        )

    def execute(self, link: RecordLink, entry: AuditEntry | None, *, actor: str, run: SyncRun) -> str:
        return approvals.handle_task_change(self._flow(link), link.asana_task_gid)
