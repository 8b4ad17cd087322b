"""Replay for the PO status flow (Sage 100 PO → the request's task): the PO is re-read from Sage now and
written back through the flow's own `apply_po` (only changed fields are written); a PO gone from Sage is
flagged on its task as the poll would. Operations: purchase_request.writeback, purchase_order.vanished."""

from __future__ import annotations

from audit.models import AuditEntry, SyncRun
from integrations.base import errors
from integrations.flows import clients as flow_clients
from integrations.flows.common.replay import Preview
from integrations.flows.common.sage_po import writeback_record
from integrations.flows.po_status.sync import apply_po, flag_deleted
from integrations.models import Flow, RecordLink

OPERATIONS = ("purchase_request.writeback", "purchase_order.vanished")


class POStatusReplay:
    name = "PO status"

    def _flow(self, link: RecordLink) -> Flow:
        flow = Flow.objects.filter(tenant=link.tenant, kind=Flow.Kind.SAGE100_PO_STATUS, enabled=True).first()
        if flow is None:
            raise errors.ConfigurationError("the tenant has no enabled Sage 100 PO status flow")
        return flow

    def preview(self, link: RecordLink, entry: AuditEntry | None) -> Preview:
        self._flow(link)
        key = link.sage_po_number
        if not key:
            return Preview(
                link.pk, str(link), "refuse", runnable=False, reason="the record has no Sage PO yet"
            )
        try:
            po = flow_clients.clients_for(link.tenant).sage.get_purchase_order(key)
        except errors.NotFound:
            return Preview(
                link.pk, key, "flag", {"PO": [key, None]}, "the PO is gone from Sage: the task is flagged"
            )
        written = (link.last_payload or {}).get("status_written_for")
        values = writeback_record(po)
        if written and written == po.get("updated_at"):
            return Preview(link.pk, key, "skip", {}, "the task already shows this version of the PO")
        return Preview(
            link.pk,
            key,
            "update",
            {k: [None, v] for k, v in values.items()},
            "the PO's values would be written",
        )

    def execute(self, link: RecordLink, entry: AuditEntry | None, *, actor: str, run: SyncRun) -> str:
        flow = self._flow(link)
        clients = flow_clients.clients_for(link.tenant)
        try:
            po = clients.sage.get_purchase_order(link.sage_po_number)
        except errors.NotFound:
            flag_deleted(flow, link, asana=clients.asana)
            return "flagged: the PO is gone from Sage"
        return apply_po(flow, po, asana=clients.asana)
