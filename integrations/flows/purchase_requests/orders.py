"""Approved Asana purchase request → exactly one Sage 100 PO, or a clear refusal on the task.

Orchestration around the pure `purchase_requests` module (ARCHITECTURE §5, §6):

    re-read the task → approved under the flow's rule? → segregation of duties (controls.py) →
    RecordLink (kind purchase_request, natural key the task GID) → build + validate (pure) → vendor
    active, GL accounts active (agent reads) → freeze payload + idempotency key on the link (state
    creating, committed) → POST through the agent → store the PO number at once (state linked) → write
    PO number / vendor / status to the task, comment.

Exactly once:
- the RecordLink is unique per (tenant, task GID) and claimed under select_for_update as a lease (a
  create may wait on a Sage lock; a row lock held that long would stall SQLite writers);
- the payload and the key `asana-task-<gid>-po-v<n>` are frozen before the first call, so every retry
  (a repeated approval, a retried 504, a second worker) sends the same request with the same key and
  the agent's ledger answers the same PO; `n` grows only after a refusal, when the requester changed
  the task;
- a link found in state `creating` looks the PO up by external id (the task GID, in UDF_ASANA_GID)
  before anything else; the agent refuses a second PO for the same external id (409, with its number).
People: the requester (`created_by`, or the people field Flow.options `requester_field_gid` names) and the
approver (`completed_by`, which for an approval task is the approver, or `approver_field_gid`) are mapped
through UserMapping (the Asana roster, read by mappings/users.py when a person is not mapped yet) to Sage
users and sent as the PO's requisitioner / confirm-to. A person without a Sage user is never a refusal:
the PO goes without that name, and the task comment and a `purchase_request.people` AuditEntry say so.
Refusals (validation, unknown vendor, inactive GL account…) put the link in `quarantined` with the
reason, append an AuditEntry and comment on the task once per version of the task's inputs; nothing
is retried until the requester changes the task. Retryable failures (lock, agent down, paused) leave
the link in `creating` and raise, so the task reschedules and the catch-up poll sweeps it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.recorder import audit_context, record_entry
from integrations.asana.shapes import TASK_FIELDS
from integrations.base import errors
from integrations.flows.common import sage_po
from integrations.flows.purchase_requests import controls as pr_controls
from integrations.flows.purchase_requests import plan as pr
from integrations.models import Flow, RecordLink
from mappings.models import FieldMapping, ValueMapping
from mappings.users import TaskPeople, task_people

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
PR_TASK_FIELDS = (*TASK_FIELDS, "num_subtasks", "created_by", "completed_by", "completed_by.name")
SUBTASK_FIELDS = (
    "name",
    "completed",
    "modified_at",
    *[f for f in TASK_FIELDS if f.startswith("custom_fields.")],
)


@dataclass
class Outcome:
    text: str
    po_number: str = ""


def request_settings(flow: Flow) -> pr.RequestSettings:
    fields = {
        m.source_path: m.asana_field_gid
        for m in FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ERP)
    }
    vendors, cost_codes, names = {}, {}, {}
    for vm in ValueMapping.objects.filter(tenant_id=flow.tenant_id, kind__in=("vendor", "cost_code")):
        target = vendors if vm.kind == "vendor" else cost_codes
        key = vm.source_value.strip()
        target[key if key.isdigit() else key.lower()] = vm.target_value.strip()
        if vm.note and key.isdigit():
            names[key] = vm.note
    options = flow.options or {}
    conn = getattr(flow.tenant, "sage100", None)
    return pr.RequestSettings(
        fields=fields,
        vendors=vendors,
        cost_codes=cost_codes,
        option_names={**names, **(options.get("option_names") or {})},
        default_division=(conn.default_ap_division if conn else "") or "00",
        item_code=options.get("item_code", "/MISC"),
        gl_account_mask=options.get("gl_account_mask", "####-##-##"),
    )


def _option_names(task: dict[str, Any]) -> dict[str, str]:
    """Enum option GID → name from the task itself (for messages that name what the requester chose)."""
    out = {}
    for entry in task.get("custom_fields") or []:
        option = entry.get("enum_value") or {}
        if option.get("gid") and option.get("name"):
            out[str(option["gid"])] = option["name"]
    return out


def _subtasks(asana: Any, task: dict[str, Any]) -> list[dict[str, Any]]:
    """GET /tasks/{gid}/subtasks — only when the task says it has some (saves a call per request)."""
    if not task.get("num_subtasks"):
        return []
    return list(asana.iter_pages(f"/tasks/{task['gid']}/subtasks", fields=SUBTASK_FIELDS))


def sage_problems(sage: Any, request: pr.PurchaseRequest) -> list[str]:
    """Validate against Sage before writing: the vendor exists and is active, each GL account is active."""
    problems = []
    try:
        vendor = sage.get_vendor(request.division, request.vendor_no)
        if not vendor.get("active"):
            problems.append(f"Vendor {request.vendor_id} ({vendor.get('name')}) is inactive in Sage 100.")
    except errors.NotFound:
        problems.append(
            f"Vendor {request.vendor_id} (for {request.vendor_text!r}) does not exist in Sage 100."
        )
    for account in sorted({line.gl_account for line in request.lines}):
        try:
            gl = sage.get_gl_account(account)
            if not gl.get("active"):
                problems.append(f"GL account {account} ({gl.get('description')}) is inactive in Sage 100.")
        except errors.NotFound:
            problems.append(f"GL account {account} does not exist in Sage 100.")
    return problems


def process_purchase_request(
    flow: Flow,
    task_gid: str,
    *,
    asana: Any,
    sage: Any,
    task: dict[str, Any] | None = None,
    inbound_event: Any = None,
    dry_run: bool = False,
) -> str:
    """Act on the task's current state. Raises only RetryableError; returns a short outcome."""
    from integrations.flows.common.approval import approval_verdict

    owner = RecordLink.objects.filter(asana_task_gid=task_gid).exclude(tenant=flow.tenant).first()
    if owner is not None:  # one task belongs to one link in the installation: never two POs
        return f"task belongs to another tenant's record ({owner.tenant.slug}); nothing done"
    link = RecordLink.objects.filter(tenant=flow.tenant, asana_task_gid=task_gid).first()
    if link is not None and link.kind != RecordLink.Kind.PURCHASE_REQUEST:
        return f"task is linked to a {link.get_kind_display()}, not a purchase request"
    with audit_context(tenant_id=flow.tenant_id, record_link=link):
        if link is not None and link.state in (RecordLink.State.LINKED, RecordLink.State.CLOSED):
            if not (link.last_payload or {}).get("announced") and not dry_run:
                po = sage.get_purchase_order(link.sage_po_number)
                sage_po.write_back(flow, link, po, asana=asana, announce=True)
            return f"already ordered: PO {link.sage_po_number}"
        if link is not None and link.state == RecordLink.State.DELETED:
            return f"PO {link.sage_po_number} was deleted in Sage; not recreated"
        if (
            link is not None
            and link.state == RecordLink.State.CREATING
            and link.approved_snapshot.get("payload")
        ):
            return (
                "dry run: would resume the create"
                if dry_run
                else create_po(flow, link, asana=asana, sage=sage)
            )
        if task is None or "num_subtasks" not in task:
            task = asana.get_task(task_gid, fields=PR_TASK_FIELDS)
        approved, why = approval_verdict(flow, task)
        if not approved:
            return f"not approved ({why})"
        subtasks = _subtasks(asana, task)
        if not dry_run:
            changed = changed_after_approval(flow, task, subtasks, asana=asana, inbound_event=inbound_event)
            if changed:
                return reset_approval(flow, task, link, changed, asana=asana, event=inbound_event)
        sod = pr_controls.check(flow, task, link, asana=asana, inbound_event=inbound_event, dry_run=dry_run)
        if sod.refused:
            return sod.outcome
        settings = request_settings(flow)
        settings = pr.RequestSettings(
            **{**settings.__dict__, "option_names": {**_option_names(task), **settings.option_names}}
        )
        digest = pr.input_hash(task, subtasks, settings)
        refused = (RecordLink.State.QUARANTINED, RecordLink.State.FAILED)
        if link is not None and link.state in refused and link.payload_hash == digest:
            return f"refused earlier and unchanged since: {link.state_reason[:200]}"
        request, problems, notes = pr.build_request(task, subtasks, settings)
        if request is not None:
            problems = sage_problems(sage, request)
        if dry_run:
            return "dry run: " + (
                "; ".join(problems) if problems else f"would create a PO for {request.vendor_id}{sod.note}"
            )
        if problems:
            return refuse(flow, task_gid, link, problems, digest, asana=asana, event=inbound_event)
        people = _people(flow, task, asana=asana)
        payload = pr.po_payload(
            request,
            po_date=timezone.localdate(),
            requester_udf=_requester_udf(flow, people),
            requisitioner=people.requester.sage_user,
            confirm_to=people.approver.sage_user,
        )
        claimed = claim(flow, task_gid, link, payload, [*notes, *people.notes], digest)
        if claimed is None:
            return "another worker is creating this PO"
        link, fresh = claimed
        with audit_context(record_link=link):
            if fresh and people.notes:
                record_entry(
                    tenant=flow.tenant,
                    flow=flow,
                    operation="purchase_request.people",
                    status="skipped",
                    record_key=task_gid,
                    error="; ".join(people.notes),
                    payload={"requisitioner": people.requester.label, "confirm_to": people.approver.label},
                    inbound_event=inbound_event,
                )
            return create_po(flow, link, asana=asana, sage=sage, fresh=fresh)


# Story subtypes that are the approval itself or comments, never a change of what was approved.
NOT_INPUT_STORIES = frozenset(
    {"comment_added", "marked_complete", "marked_incomplete", "approved", "rejected", "changes_requested"}
)


def changed_after_approval(
    flow: Flow, task: dict[str, Any], subtasks: list[dict[str, Any]], *, asana: Any, inbound_event: Any = None
) -> list[str]:
    """What changed in the request's inputs after its approval, on Asana's clock (empty: nothing).

    The approval binds to what the approver saw (ARCHITECTURE §6a): a mapped field, the name (the
    default description) or a line (subtask) changed at or after the approval's time needs a new
    approval. Times are Asana's: the stories' `created_at` and the subtasks' `modified_at`."""
    from integrations.asana.shapes import parse_asana_time
    from integrations.flows.common import binding

    moment = binding.approval_moment(asana, flow, task, inbound_event)
    if moment.at is None:
        return ["Asana does not say when the request was approved"]
    inputs = set(
        FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ERP).values_list(
            "asana_field_gid", flat=True
        )
    ) - {flow.approval_field_gid}
    # The connector's own writes (the PO number, vendor name and status written back) change nothing
    # the approver approved.
    ours = getattr(getattr(flow.tenant, "asana", None), "connector_user_gid", "") or ""
    changes = []
    try:
        stories = list(asana.iter_stories(task["gid"]))
    except errors.PermanentError:
        stories = []  # an Asana without readable stories: the lines' times below still count
    for story in stories:
        when = parse_asana_time(story.get("created_at"))
        subtype = story.get("resource_subtype") or ""
        if when is None or when < moment.at or subtype in NOT_INPUT_STORIES:
            continue
        if ours and str((story.get("created_by") or {}).get("gid") or "") == ours:
            continue
        field = str((story.get("custom_field") or {}).get("gid") or "")
        if (field and field in inputs) or subtype == "name_changed":
            changes.append(story.get("text") or subtype)
    for sub in subtasks:
        when = parse_asana_time(sub.get("modified_at"))
        if when is not None and when >= moment.at:
            changes.append(f"line '{sub.get('name')}' changed")
    return changes


def reset_approval(
    flow: Flow, task: dict[str, Any], link: RecordLink | None, changes: list[str], *, asana: Any, event=None
) -> str:
    """Ask for a new approval: reset it on the task, with a comment naming what changed, and record it."""
    from integrations.flows.common import binding

    text = "; ".join(changes)
    try:
        asana.update_task(task["gid"], binding.approval_reset_changes(flow, task))
        asana.add_comment(
            task["gid"],
            f"Changed after approval ({text}). No purchase order was created: please review and approve "
            "again. (ml-connector)",
        )
    except errors.ConnectorError as exc:
        log.warning("could not reset the approval of task %s: %s", task["gid"], exc)
    record_entry(
        tenant=flow.tenant,
        flow=flow,
        record_link=link,
        operation="changed_after_approval",
        status="quarantined",
        record_key=task["gid"],
        error=f"changed after approval: {text}; approval reset, a new approval is needed",
        inbound_event=event,
    )
    return f"changed after approval ({text}): approval reset"


def _people(flow: Flow, task: dict[str, Any], *, asana: Any) -> TaskPeople:
    """Requester → requisitioner, approver → confirm-to, through UserMapping (mappings/users.py).
    Flow.options `requester_field_gid` / `approver_field_gid` name people custom fields that override the
    task's `created_by` / `completed_by`."""
    options = flow.options or {}
    return task_people(
        flow.tenant,
        task,
        asana=asana,
        requester_field_gid=str(options.get("requester_field_gid") or ""),
        approver_field_gid=str(options.get("approver_field_gid") or ""),
    )


def _requester_udf(flow: Flow, people: TaskPeople) -> dict[str, str]:
    """flow.options["requester_udf"] (e.g. UDF_REQUESTED_BY): the requester's Sage user in a UDF as well."""
    udf = (flow.options or {}).get("requester_udf")
    return {udf: people.requester.sage_user} if udf and people.requester.sage_user else {}


def claim(flow: Flow, task_gid: str, link: RecordLink | None, payload: dict, notes: list[str], digest: str):
    """Freeze the payload and key on the link (state creating), committed before the agent is called."""
    now = timezone.now()
    with transaction.atomic():
        if link is None:
            try:
                with transaction.atomic():
                    link = RecordLink.objects.create(
                        tenant=flow.tenant,
                        flow=flow,
                        kind=RecordLink.Kind.PURCHASE_REQUEST,
                        asana_task_gid=task_gid,
                        state=RecordLink.State.CREATING,
                    )
            except IntegrityError:  # another worker created it a moment ago — or another tenant owns it
                link = RecordLink.objects.get(asana_task_gid=task_gid)
                if link.tenant_id != flow.tenant_id:
                    return None
        locked = RecordLink.objects.select_for_update().get(pk=link.pk)
        if locked.state in (RecordLink.State.LINKED, RecordLink.State.CLOSED, RecordLink.State.DELETED):
            return None
        if locked.state == RecordLink.State.CREATING and locked.approved_snapshot.get("payload"):
            if locked.attempt_started_at and now - locked.attempt_started_at < LEASE:
                return None
            return locked, False  # a stale claim of another worker: resume it as frozen
        version = int((locked.approved_snapshot or {}).get("version") or 0) + 1
        locked.approved_snapshot = {
            "version": version,
            "idempotency_key": f"asana-task-{task_gid}-po-v{version}",
            "payload": payload,
            "notes": notes,
            "approved_at": now.isoformat(),
        }
        locked.state = RecordLink.State.CREATING
        locked.state_reason = ""
        locked.payload_hash = digest
        locked.attempt_started_at = now
        locked.save()
        return locked, True


def create_po(flow: Flow, link: RecordLink, *, asana: Any, sage: Any, fresh: bool = False) -> str:
    """Create (or find) the PO for a link in state creating; see the module docstring."""
    from integrations.sage100.client import DuplicateExternalId

    snap = link.approved_snapshot
    key = snap["idempotency_key"]
    RecordLink.objects.filter(pk=link.pk).update(attempt_started_at=timezone.now())
    po = None if fresh else sage.find_po_by_external_id(link.asana_task_gid)  # unknown earlier outcome
    reconciled = po is not None
    try:
        if po is None:
            po = sage.create_purchase_order(snap["payload"], key)
            reconciled = bool(po.get("reconciled") or po.get("idempotent_replay"))
    except DuplicateExternalId as exc:
        po, reconciled = sage.get_purchase_order(exc.po_number), True
    except errors.RetryableError as exc:
        RecordLink.objects.filter(pk=link.pk).update(
            failure_count=link.failure_count + 1, state_reason=f"will retry: {exc}"[:2000]
        )
        _entry(flow, link, "purchase_order.create", "retrying", key, payload=snap["payload"], exc=exc)
        raise
    except errors.Conflict as exc:  # IDEMPOTENCY_CONFLICT: only a PO carrying our GID would settle it
        po = sage.find_po_by_external_id(link.asana_task_gid)
        if po is None:
            return _fail(flow, link, key, exc, asana=asana)
        reconciled = True
    except errors.PermanentError as exc:
        return _fail(flow, link, key, exc, asana=asana)
    number = str(po["po_number"])
    RecordLink.objects.filter(pk=link.pk).update(
        state=RecordLink.State.LINKED,
        sage_po_number=number,
        state_reason="",
        source_modified_at=_parse(po.get("updated_at")),
    )
    link.refresh_from_db()
    _entry(
        flow,
        link,
        "purchase_order.create",
        "succeeded",
        key,
        payload=snap["payload"],
        note=f"PO {number}" + (" (found, not created again)" if reconciled else ""),
    )
    sage_po.write_back(flow, link, po, asana=asana, announce=True)
    return f"PO {number} {'reconciled' if reconciled else 'created'}"


def _fail(flow: Flow, link: RecordLink, key: str, exc: errors.ConnectorError, *, asana: Any) -> str:
    """A refusal by Sage or the agent after the payload was frozen: quarantined, visible, not retried."""
    state = RecordLink.State.QUARANTINED if isinstance(exc, errors.Invalid) else RecordLink.State.FAILED
    reason = f"Sage 100 refused the purchase order: {exc.message}"
    RecordLink.objects.filter(pk=link.pk).update(state=state, state_reason=reason[:2000])
    link.refresh_from_db()
    _entry(
        flow,
        link,
        "purchase_order.create",
        "failed" if state == "failed" else "quarantined",
        key,
        payload=link.approved_snapshot.get("payload"),
        exc=exc,
    )
    _tell(flow, link, [reason], asana=asana)
    return reason


def refuse(flow, task_gid, link, problems, digest, *, asana, event=None) -> str:
    """Validation failed before any write: a quarantined link (the console), an AuditEntry, a comment."""
    reason = " ".join(problems)
    if link is None:
        try:
            link = RecordLink.objects.create(
                tenant=flow.tenant,
                flow=flow,
                kind=RecordLink.Kind.PURCHASE_REQUEST,
                asana_task_gid=task_gid,
                state=RecordLink.State.QUARANTINED,
                state_reason=reason[:2000],
                payload_hash=digest,
            )
        except IntegrityError:
            link = RecordLink.objects.get(tenant=flow.tenant, asana_task_gid=task_gid)
    RecordLink.objects.filter(pk=link.pk).update(
        state=RecordLink.State.QUARANTINED, state_reason=reason[:2000], payload_hash=digest
    )
    link.refresh_from_db()
    with audit_context(record_link=link):
        record_entry(
            tenant=flow.tenant,
            flow=flow,
            operation="purchase_request.validate",
            status="quarantined",
            record_key=task_gid,
            error=reason,
            inbound_event=event,
        )
        _tell(flow, link, problems, asana=asana)
    return f"refused: {reason}"


def _tell(flow: Flow, link: RecordLink, problems: list[str], *, asana: Any) -> None:
    text = "Not sent to Sage 100:\n" + "\n".join(f"• {p}" for p in problems)
    text += "\nCorrect the task; the connector checks it again when it changes."
    sage_po.write_status(flow, link, {"OrderStatus": sage_po.REFUSED}, asana=asana)
    asana.add_comment(link.asana_task_gid, text)


def _entry(flow, link, operation, status, key, *, payload=None, exc=None, note="") -> None:
    record_entry(
        tenant=flow.tenant,
        flow=flow,
        record_link=link,  # explicit: the catch-up poll resumes creates outside any audit context
        operation=operation,
        status=status,
        record_key=link.asana_task_gid,
        idempotency_key=key,
        payload=payload or {},
        error=str(exc) if exc else note,
        error_class=type(exc).__name__ if exc else "",
        attempts=link.failure_count + 1,
    )


def _parse(value: str | None):
    from django.utils.dateparse import parse_datetime

    return parse_datetime(value.replace("Z", "+00:00")) if value else None
