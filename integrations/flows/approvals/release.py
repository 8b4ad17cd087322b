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
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.recorder import audit_context, record_entry
from integrations.acumatica import actions as acu_actions
from integrations.asana import fields as cf
from integrations.base import errors
from integrations.base.deadline import attempt_deadline
from integrations.flows import clients as flow_clients
from integrations.flows.approvals import controls
from integrations.flows.clients import Clients
from integrations.flows.common import binding, control_effects
from integrations.flows.common.approval import DONE_STATUSES, approval_verdict
from integrations.flows.common.controls.rules import level_of
from integrations.models import Flow, RecordLink
from mappings.models import FieldMapping, ValueMapping

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
# Fields that identify "the bill that was approved" (approval_binding.GUARDED_FIELDS): compared between
# what the connector last wrote to the task, the task now and the document re-read before releasing.
GUARDED_FIELDS = binding.GUARDED_FIELDS
DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)


# ---- pure decisions --------------------------------------------------------------------------------


_normalise = binding.normalise


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
    clients = clients or flow_clients.clients_for(flow.tenant)
    task = task or clients.asana.get_task(task_gid)
    link = RecordLink.objects.filter(tenant=flow.tenant, asana_task_gid=task_gid).first()
    if link is None and level_of(task) is not None:
        # An approval-level subtask moved (finance controls): act on its parent's document.
        parent = (clients.asana.get_task(task_gid, fields=("parent",)).get("parent") or {}).get("gid")
        if parent and RecordLink.objects.filter(tenant=flow.tenant, asana_task_gid=parent).exists():
            return handle_task_change(flow, str(parent), clients=clients, inbound_event=inbound_event)
    if link is None or link.kind not in GUARDED_FIELDS:
        return "no linked Acumatica document"
    from integrations.flows.approvals import writeback

    with audit_context(tenant_id=flow.tenant_id, record_link=link):
        approved, why = approval_verdict(flow, task)
        if not link.is_live:
            # The document was deleted, voided or cancelled: its task's approvals act on nothing, and
            # a document entered again under the same number has its own generation and task.
            if approved:
                _ended_link_approved(flow, link, task, clients, inbound_event)
            return f"the task's document is {link.get_state_display().lower()}; nothing to act on"
        written = writeback.apply_task_values(flow, link, task, clients=clients, inbound_event=inbound_event)
        if not approved:
            _withdraw_if_unapproved(link, why)
            return f"not approved ({why}); {written}"
        return release_document(flow, link.pk, task, clients=clients, inbound_event=inbound_event)


def _ended_link_approved(flow: Flow, link: RecordLink, task: dict[str, Any], clients, inbound_event) -> None:
    """Say once, on the task and in the audit trail, that this approval acts on nothing."""
    snapshot = link.approved_snapshot or {}
    if snapshot.get("ended_noted"):
        return
    reason = (
        f"{_key(link)} was {link.get_state_display().lower()} in Acumatica ({link.state_reason}); "
        "this task's approval acts on nothing"
    )
    record_entry(
        tenant=link.tenant,
        flow=flow,
        operation=f"{link.kind}.release",
        status="skipped",
        record_key=_key(link),
        idempotency_key=f"release:{task['gid']}",
        inbound_event=inbound_event,
        error=reason,
    )
    try:
        clients.asana.add_comment(task["gid"], f"Not released: {reason}. (ml-connector)")
    except errors.ConnectorError as exc:
        log.warning("could not comment on task %s: %s", task["gid"], exc)
        return
    RecordLink.objects.filter(pk=link.pk).update(approved_snapshot={**snapshot, "ended_noted": True})


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
    """Take the link's lease with the next fencing token (`link.claim_token` is ours afterwards)."""
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
        link.claim_token += 1
        link.save(update_fields=["attempt_started_at", "claim_token"])
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
        # Every wait inside the attempt (budgets, the session gate, retries, 202 polling) ends well
        # inside the lease, so no other worker can take the link over while this one still acts.
        with attempt_deadline(LEASE.total_seconds() * 0.8):
            return _release_claimed(flow, link, task, clients, inbound_event)
    finally:
        # Only the holder clears the lease: a worker whose lease expired and was taken over must not
        # clear its successor's claim (a conditional UPDATE on the fencing token).
        RecordLink.objects.filter(pk=link.pk, claim_token=link.claim_token).update(attempt_started_at=None)


def _doc_flow_options(flow: Flow, link: RecordLink) -> dict[str, Any]:
    return dict(getattr(link.flow, "options", None) or {}) if link.flow_id else dict(flow.options or {})


def _release_claimed(
    flow: Flow, link: RecordLink, task: dict[str, Any], clients: Clients, inbound_event
) -> str:
    kind = link.kind
    mappings = _document_mappings(flow, link)
    paths = binding.guarded_paths(kind, _doc_flow_options(flow, link))
    doc_flow = link.flow if link.flow_id else flow
    mapped = binding.mapped_guards(mappings, getattr(doc_flow, "erp_reference_field_gid", ""))
    mappings = [m for m in mappings if (m.source_path, m.precision) in mapped]
    snapshot = dict(link.approved_snapshot or {})
    if snapshot.get("task_gid") != task["gid"]:
        snapshot = {"task_gid": task["gid"]}
    ctx = Attempt(
        flow=flow, link=link, task=task, clients=clients, snapshot=snapshot, inbound_event=inbound_event
    )
    if snapshot.get("released_at"):
        return ctx.finish("released", "already released by an earlier attempt", calls=False)
    if not any(path in paths for path, _ in mapped):
        return ctx.refuse(
            "no amount, vendor or reference is mapped to the task: the approval cannot be "
            "checked against the document",
            reopen=False,
        )
    try:
        moment = binding.approval_moment(clients.asana, flow, task, inbound_event)
        shown = snapshot_values(task, mappings, paths)
        try:
            document = ctx.read()
        except errors.NotFound:
            document = None
        if document is not None and document.get("Status") in DONE_STATUSES[kind]:
            ctx.bind(moment, {})
            return ctx.finish("released", f"already {document['Status']} in Acumatica")
        values = binding.guarded_values(document or {}, mapped, paths)
        ctx.bind(moment, values)
        problems = binding.binding_problems(link, moment, shown, document, values)
        if problems:
            diffs = [
                (p, link.guarded_values.get(p), values.get(p))
                for p in link.guarded_values
                if document is not None and values.get(p) != link.guarded_values.get(p)
            ]
            return ctx.refuse("; ".join(problems), diffs=diffs)
        held = controls.gate(ctx, document, moment)
        if held is not None:
            return held
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

    def bind(self, moment: binding.ApprovalMoment, document_values: dict[str, Any]) -> None:
        """Record what this approval is bound to: Asana's time of it, the approver, and the values the
        connector had written (the evidence an auditor reads)."""
        link = self.link
        self.snapshot = {
            **self.snapshot,
            "generation": link.generation,
            "approved_at": moment.at.isoformat() if moment.at else None,
            "approved_by": moment.by,
            "approval_source": moment.source,
            "values": dict(link.guarded_values or {}),
            "values_written_at": link.guarded_written_at.isoformat() if link.guarded_written_at else None,
            "document_values": document_values,
        }
        RecordLink.objects.filter(pk=link.pk).update(approved_snapshot=self.snapshot)

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
            acu_actions.require(self.link.tenant.acumatica, entity, "Approve")  # discovered at check time
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
            acu_actions.require(link.tenant.acumatica, "Bill", "ReleaseBill")
            self.steps.append("ReleaseBill")
            return self.acu.release_bill(link.acumatica_type, link.acumatica_ref, deadline=deadline)
        # Only Pending Approval gets an Approve (never Pending Printing / Pending Email), and only an
        # action the tenant's Acumatica offers (integrations/acumatica/actions.py, reference §5.4).
        acu_actions.require_status(
            "PurchaseOrder", link.acumatica_ref, self.action_name, document.get("Status")
        )
        acu_actions.require(link.tenant.acumatica, "PurchaseOrder", self.action_name)
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
        if control_effects.reset_approval(self.clients.asana, self.flow, self.task):
            RecordLink.objects.filter(pk=self.link.pk).update(approved_snapshot={})

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
