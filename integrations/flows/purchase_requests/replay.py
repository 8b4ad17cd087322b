"""Replay for the purchase-request flow (Asana request → Sage 100 PO): the record is re-processed by the
flow's own `process_purchase_request`, behind every guard it has (the approval binding, the one-PO-per-task
claim, the agent's idempotency key), so a replay of a request that already has its PO creates none.

The preview runs the same function as a dry run: it reads the task and checks the request against Sage,
and says what a replay would do (create, resume a create, refuse and why, or nothing), writing nothing.
"""

from __future__ import annotations

from audit.models import AuditEntry, SyncRun
from integrations.base import errors
from integrations.flows import clients as flow_clients
from integrations.flows.common.replay import Preview
from integrations.flows.purchase_requests.orders import process_purchase_request
from integrations.models import RecordLink

OPERATIONS = ("purchase_order.create", "purchase_request.validate", "purchase_request.people")


class PurchaseRequestReplay:
    name = "purchase requests"

    def _flow(self, link: RecordLink):
        if link.flow is None:
            raise errors.ConfigurationError(f"{link} has no flow")
        return link.flow

    def preview(self, link: RecordLink, entry: AuditEntry | None) -> Preview:
        flow = self._flow(link)
        key = link.asana_task_gid
        if not key:
            return Preview(
                link.pk, str(link), "refuse", runnable=False, reason="the record has no Asana task"
            )
        clients = flow_clients.clients_for(link.tenant)
        outcome = process_purchase_request(flow, key, asana=clients.asana, sage=clients.sage, dry_run=True)
        if link.sage_po_number:
            return Preview(link.pk, key, "skip", {"PO": [link.sage_po_number, link.sage_po_number]}, outcome)
        action = "create" if outcome.startswith("dry run: would") else "skip"
        return Preview(link.pk, key, action, {"PO": [None, "new"]} if action == "create" else {}, outcome)

    def execute(self, link: RecordLink, entry: AuditEntry | None, *, actor: str, run: SyncRun) -> str:
        clients = flow_clients.clients_for(link.tenant)
        return process_purchase_request(
            self._flow(link), link.asana_task_gid, asana=clients.asana, sage=clients.sage
        )
