"""Asana approval → Acumatica release, exactly once, and only for the document that was approved.

Pure part (unit-tested without I/O): `approval_verdict` (the flow's approval rule), `snapshot_values`
(what the task showed when approved) and `document_differences` (is the bill still that bill?).

Orchestration (`handle_task_change`, called by the worker for every task event or polled change):
re-read the task → write mapped custom-field changes back (writeback.py) → if approved: claim the
RecordLink, re-read the document and release it with the guards of reference/acumatica.md §5, §9:

    already Open/Closed              done (idempotent: a repeated event or a retry changes nothing)
    amount/vendor/reference changed  refused, flagged for the operator, the task is reopened
    Hold / On Hold                   PUT Hold=false
    Pending Approval                 Approve when the tenant uses approval maps, else a clear error
    not Balanced                     error
    ReleaseBill                      202 polling; a deadline passing is Timeout(outcome_unknown):
                                     the next attempt re-reads the status before acting again
    afterwards                       re-read and confirm Open

Locking: the RecordLink is claimed as a lease (`attempt_started_at`, set under select_for_update and
committed) rather than held locked across vendor calls: a release may poll for minutes, and on SQLite a
row lock is a database-wide write lock that would stall the webhook view. Every attempt appends an
AuditEntry; the outcome goes back to the task as a status custom field and a comment, once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.recorder import audit_context, record_entry
from integrations.asana import fields as cf
from integrations.asana.client import approval_outcome
from integrations.base import errors
from integrations.models import Flow, RecordLink, Tenant
from mappings.models import FieldMapping, ValueMapping

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
# Fields that identify "the bill that was approved": compared between the approval snapshot and the
# document re-read before releasing (by whatever FieldMapping puts them on the task).
GUARDED_FIELDS = {
    RecordLink.Kind.BILL: ("Amount", "Vendor", "ReferenceNbr", "VendorRef"),
    RecordLink.Kind.PURCHASE_ORDER: ("OrderTotal", "VendorID", "OrderNbr", "VendorRef"),
}
DONE_STATUSES = {
    RecordLink.Kind.BILL: frozenset({"Open", "Closed"}),
    RecordLink.Kind.PURCHASE_ORDER: frozenset({"Open", "Completed", "Closed"}),
}
DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)


@dataclass
class Clients:
    asana: Any
    acumatica: Any


def clients_for(tenant: Tenant) -> Clients:
    """The vendor clients a flow step uses (tests and benchmarks replace this with sandbox clients)."""
    from integrations.acumatica.client import client_for as acumatica_client
    from integrations.asana.client import client_for as asana_client

    acumatica = acumatica_client(tenant.acumatica) if hasattr(tenant, "acumatica") else None
    return Clients(asana=asana_client(tenant.asana), acumatica=acumatica)


# ---- pure decisions --------------------------------------------------------------------------------


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


def _normalise(value: Any, precision: int | None = None) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, Decimal)):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        if precision is not None:
            number = number.quantize(Decimal(1).scaleb(-precision))
        return str(number.normalize() if precision is None else number)
    return str(value).strip()


def snapshot_values(task: dict[str, Any], mappings: list[FieldMapping], guarded: tuple[str, ...]) -> dict:
    """{source path: normalised value shown on the task} for the guarded fields that are mapped."""
    shown = cf.decode_custom_fields(task)
    out = {}
    for m in mappings:
        if m.source_path not in guarded or m.asana_field_gid not in shown:
            continue
        value = shown[m.asana_field_gid]
        if m.cached_type == FieldMapping.FieldType.ENUM and value:
            vm = ValueMapping.objects.filter(field_mapping=m, target_value=value).first()
            value = vm.source_value if vm else value
        out[m.source_path] = _normalise(value, m.precision)
    return out


def document_differences(
    approved: dict[str, Any], document: dict[str, Any], precisions: dict[str, int | None]
):
    """[(field, approved value, current value)] where the re-read document no longer matches."""
    diffs = []
    for path, shown in approved.items():
        current = _normalise(document.get(path), precisions.get(path))
        if current != shown:
            diffs.append((path, shown, current))
    return diffs


# ---- orchestration ---------------------------------------------------------------------------------


def handle_task_change(
    flow: Flow,
    task_gid: str,
    *,
    clients: Clients | None = None,
    inbound_event=None,
    task: dict[str, Any] | None = None,
) -> str:
    """Act on the task's CURRENT state (events are hints). Returns a short outcome for the event row."""
    clients = clients or clients_for(flow.tenant)
    task = task or clients.asana.get_task(task_gid)
    link = RecordLink.objects.filter(tenant=flow.tenant, asana_task_gid=task_gid).first()
    if link is None or link.kind not in GUARDED_FIELDS:
        return "no linked Acumatica document"
    from . import writeback

    with audit_context(tenant_id=flow.tenant_id, record_link=link):
        written = writeback.apply_task_values(flow, link, task, clients=clients, inbound_event=inbound_event)
        approved, why = approval_verdict(flow, task)
        if not approved:
            _withdraw_if_unapproved(link, why)
            return f"not approved ({why}); {written}"
        return release_document(flow, link.pk, task, clients=clients, inbound_event=inbound_event)


def _withdraw_if_unapproved(link: RecordLink, why: str) -> None:
    snapshot = link.approved_snapshot or {}
    if snapshot.get("values") is not None and not snapshot.get("released_at"):
        RecordLink.objects.filter(pk=link.pk).update(approved_snapshot={})
        record_entry(
            tenant=link.tenant,
            operation="approval.withdrawn",
            status="succeeded",
            record_key=_key(link),
            source_snapshot=snapshot,
            error=why,
        )


def _key(link: RecordLink) -> str:
    return f"{link.acumatica_type} {link.acumatica_ref}".strip()


def _claim(link_id: int) -> RecordLink:
    now = timezone.now()
    with transaction.atomic():
        link = RecordLink.objects.select_for_update().get(pk=link_id)
        if link.attempt_started_at and now - link.attempt_started_at < LEASE:
            raise errors.Locked(
                f"another worker is acting on {link} since {link.attempt_started_at:%H:%M:%S}",
                system="connector",
                retry_after=30,
            )
        link.attempt_started_at = now
        link.save(update_fields=["attempt_started_at"])
    return link


def _document_mappings(flow: Flow, link: RecordLink) -> list[FieldMapping]:
    qs = FieldMapping.objects.filter(direction=FieldMapping.Direction.TO_ASANA)
    if link.flow_id:
        return list(qs.filter(flow_id=link.flow_id))
    return list(
        qs.filter(
            flow__tenant=flow.tenant,
            flow__kind__in=DOCUMENT_KINDS,
            flow__asana_project_gid=flow.asana_project_gid,
        )
    )


def release_document(
    flow: Flow, link_id: int, task: dict[str, Any], *, clients: Clients, inbound_event=None
) -> str:
    link = _claim(link_id)
    try:
        return _release_claimed(flow, link, task, clients, inbound_event)
    finally:
        RecordLink.objects.filter(pk=link.pk).update(attempt_started_at=None)


def _release_claimed(
    flow: Flow, link: RecordLink, task: dict[str, Any], clients: Clients, inbound_event
) -> str:
    kind = link.kind
    mappings = _document_mappings(flow, link)
    precisions = {m.source_path: m.precision for m in mappings}
    snapshot = dict(link.approved_snapshot or {})
    if snapshot.get("values") is None or snapshot.get("task_gid") != task["gid"]:
        snapshot = {
            "task_gid": task["gid"],
            "approved_seen_at": timezone.now().isoformat(),
            "task_modified_at": task.get("modified_at"),
            "values": snapshot_values(task, mappings, GUARDED_FIELDS[kind]),
        }
        RecordLink.objects.filter(pk=link.pk).update(approved_snapshot=snapshot)
    ctx = Attempt(
        flow=flow, link=link, task=task, clients=clients, snapshot=snapshot, inbound_event=inbound_event
    )
    if snapshot.get("released_at"):
        return ctx.finish("released", "already released by an earlier attempt", calls=False)
    if not snapshot["values"]:
        return ctx.refuse(
            "no amount, vendor or reference is mapped to the task: the approval cannot be "
            "checked against the document",
            reopen=False,
        )
    try:
        document = ctx.read()
        if document.get("Status") in DONE_STATUSES[kind]:
            return ctx.finish("released", f"already {document['Status']} in Acumatica")
        diffs = document_differences(snapshot["values"], document, precisions)
        if diffs:
            text = "; ".join(f"{p}: approved {a!r}, now {c!r}" for p, a, c in diffs)
            return ctx.refuse(f"the document changed after approval ({text})", diffs=diffs)
        document = ctx.prepare(document)
        document = ctx.act(document, deadline=float(flow.options.get("release_deadline_seconds", 300)))
        if document.get("Status") in DONE_STATUSES[kind]:
            return ctx.finish("released", f"{document.get('Status')} after {ctx.action_name}")
        return ctx.fail(
            errors.UnexpectedResponse(
                f"after {ctx.action_name} the document is {document.get('Status')!r}", system="acumatica"
            )
        )
    except errors.RetryableError as exc:
        ctx.retrying(exc)
        raise
    except errors.PermanentError as exc:
        return ctx.fail(exc)


class Attempt:
    """One release attempt on a claimed link: reads, guarded actions, and the recorded outcome."""

    def __init__(
        self,
        *,
        flow: Flow,
        link: RecordLink,
        task: dict[str, Any],
        clients: Clients,
        snapshot: dict[str, Any],
        inbound_event=None,
    ):
        self.flow, self.link, self.task, self.clients, self.snapshot = flow, link, task, clients, snapshot
        self.inbound_event = inbound_event
        self.acu = clients.acumatica
        self.steps: list[str] = []
        self.is_bill = link.kind == RecordLink.Kind.BILL
        self.action_name = "ReleaseBill" if self.is_bill else str(flow.options.get("po_action") or "Approve")

    # ---- Acumatica ---------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        link = self.link
        if self.is_bill:
            return self.acu.get_bill(link.acumatica_type, link.acumatica_ref, expand=None)
        return self.acu.get_purchase_order(link.acumatica_type, link.acumatica_ref, expand=None)

    def prepare(self, document: dict[str, Any]) -> dict[str, Any]:
        """Hold → PUT Hold=false; Pending Approval → Approve only under approval maps (§5.3, §5.4)."""
        link, entity = self.link, "Bill" if self.is_bill else "PurchaseOrder"
        keys = {
            "Type": link.acumatica_type,
            ("ReferenceNbr" if self.is_bill else "OrderNbr"): link.acumatica_ref,
        }
        if document.get("Hold") or document.get("Status") == "On Hold":
            self.acu.put(entity, {**keys, "Hold": False}, mode="update")
            self.steps.append("removed hold")
            document = self.read()
        if document.get("Status") == "Pending Approval":
            if not getattr(self.link.tenant.acumatica, "uses_approval_maps", False):
                raise errors.Invalid(
                    f"{entity} {link.acumatica_ref} is Pending Approval in Acumatica and this tenant does "
                    "not use Acumatica approval maps: approve it in Acumatica, or turn on "
                    "'uses approval maps' so the connector approves it as an approver user",
                    system="acumatica",
                )
            if self.is_bill:
                self.acu.approve_bill(link.acumatica_type, link.acumatica_ref)
            else:
                self.acu.invoke_action("PurchaseOrder", "Approve", keys)
            self.steps.append("approved in Acumatica")
            document = self.read()
        return document

    def act(self, document: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        link = self.link
        if document.get("Status") in DONE_STATUSES[link.kind]:
            return document
        if self.is_bill:
            if document.get("Status") not in ("Balanced", "Under Reclassification"):
                raise errors.Invalid(
                    f"the bill is {document.get('Status')!r}; only Balanced bills can be released",
                    system="acumatica",
                )
            self.steps.append("ReleaseBill")
            return self.acu.release_bill(link.acumatica_type, link.acumatica_ref, deadline=deadline)
        self.steps.append(self.action_name)
        self.acu.invoke_action(
            "PurchaseOrder",
            self.action_name,
            {"Type": link.acumatica_type, "OrderNbr": link.acumatica_ref},
            deadline=deadline,
        )
        return self.read()

    # ---- outcomes ------------------------------------------------------------------------------------
    def _entry(self, status: str, error: str = "", **fields: Any) -> None:
        record_entry(
            tenant=self.link.tenant,
            flow=self.flow,
            operation=f"{self.link.kind}.release",
            status=status,
            record_key=_key(self.link),
            idempotency_key=f"release:{self.task['gid']}",
            source_snapshot=self.snapshot,
            inbound_event=self.inbound_event,
            error=error,
            payload={"steps": self.steps},
            **fields,
        )

    def finish(self, outcome: str, detail: str, *, calls: bool = True) -> str:
        snapshot = {
            **self.snapshot,
            "released_at": self.snapshot.get("released_at") or timezone.now().isoformat(),
        }
        RecordLink.objects.filter(pk=self.link.pk).update(approved_snapshot=snapshot, state_reason="")
        self.snapshot = snapshot
        if calls or not snapshot.get("outcome_written"):
            self._entry("succeeded" if calls else "unchanged", detail)
        self.write_outcome(outcome, f"Released in Acumatica: {detail}.")
        return f"{outcome}: {detail}"

    def refuse(self, reason: str, *, diffs=None, reopen: bool = True) -> str:
        """Flag for the operator: the link keeps the reason, the audit entry is quarantined, the task is
        reopened so a fresh approval (of what the task now shows) is needed."""
        RecordLink.objects.filter(pk=self.link.pk).update(state_reason=f"release refused: {reason}")
        self._entry(
            "quarantined", reason, field_diff={p: {"approved": a, "now": c} for p, a, c in diffs or []}
        )
        self.write_outcome("refused", f"Not released: {reason}. Please review and approve again.")
        if reopen:
            self.reopen()
        return f"refused: {reason}"

    def fail(self, exc: errors.ConnectorError) -> str:
        RecordLink.objects.filter(pk=self.link.pk).update(
            state_reason=f"release failed: {exc.message}", failure_count=self.link.failure_count + 1
        )
        self._entry("failed", str(exc), error_class=type(exc).__name__)
        self.write_outcome("failed", f"Release failed: {exc.message}")
        return f"failed: {exc.message}"

    def retrying(self, exc: errors.ConnectorError) -> None:
        note = " (outcome unknown: the next attempt re-reads the status first)" if exc.outcome_unknown else ""
        self._entry("retrying", f"{exc}{note}", error_class=type(exc).__name__)

    def reopen(self) -> None:
        flow, asana, gid = self.flow, self.clients.asana, self.task["gid"]
        try:
            if flow.approval_rule == Flow.ApprovalRule.ENUM_OPTION:
                reset = flow.options.get("reopen_option_gid")  # None clears the field
                asana.update_task(gid, {"custom_fields": {flow.approval_field_gid: reset}})
            elif approval_outcome(self.task) is not None:
                asana.update_task(gid, {"approval_status": "pending"})
            else:
                asana.uncomplete_task(gid)
            RecordLink.objects.filter(pk=self.link.pk).update(approved_snapshot={})
        except errors.ConnectorError as exc:
            log.warning("could not reopen task %s after a refused release: %s", gid, exc)

    def write_outcome(self, outcome: str, comment: str) -> None:
        """The status custom field and one comment per outcome (not repeated by a retry or a duplicate)."""
        current = RecordLink.objects.get(pk=self.link.pk).approved_snapshot or {}
        if current.get("outcome_written") == outcome:
            return
        options = self.flow.options or {}
        field_gid = options.get("outcome_field_gid")
        option_gid = (options.get("outcome_options") or {}).get(outcome)
        gid = self.task["gid"]
        try:
            if field_gid and option_gid:
                self.clients.asana.update_task(gid, {"custom_fields": {field_gid: option_gid}})
            self.clients.asana.add_comment(gid, comment)
        except errors.ConnectorError as exc:
            log.warning("could not write the release outcome to task %s: %s", gid, exc)
            return
        if current:
            RecordLink.objects.filter(pk=self.link.pk).update(
                approved_snapshot={**current, "outcome_written": outcome}
            )
