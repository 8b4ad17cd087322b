"""The fix of one difference, as a guarded replay: `preview` reads the systems now and says what the fix
would write (nothing written, no API-call rows kept); `enqueue` opens a SyncRun (trigger replay,
triggered_by the operator) and queues `fix_difference`; `execute` re-runs the owning flow's own
code — never a write of our own making where a flow has one:

    unlinked_document    the documents flow's `DocumentSync.process` for that document (creates the task)
    missing_document     the same (the flow closes the task of a document that is gone)
    approved_unreleased  the approvals flow's `handle_task_change` (every release guard applies)
    released_task_open   the release outcome written to the task (the approvals flow's outcome field, or
                         completing the task without one) and a comment — as the approvals flow does
    pr_approved_no_po    the purchase request flow's `process_purchase_request` (exactly-once create)
    po_status_mismatch   the PO-status flow's `apply_po` with the PO as Sage holds it now, after
                         forgetting what we believed the task showed

Every entry written carries actor = the operator (audit_context), and one `reconciliation.fix` entry
records the difference, the preview and the outcome.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import ReconciliationDifference, SyncRun
from audit.recorder import audit_context, record_entry
from integrations.base import errors
from integrations.flows.clients import Clients
from integrations.flows.common.approval import approval_verdict
from integrations.flows.common.replay import Preview
from integrations.models import Flow, RecordLink

from . import report
from .compare import approvals_flow_for, expected_status_value

RELEASE_COMMENT = "Released in Acumatica (found by ml-connector's reconciliation): {status}."


def _doc_sync(diff: ReconciliationDifference, clients: Clients, **kwargs: Any):
    from integrations.flows.documents.sync import DocumentSync

    if diff.flow is None:
        raise errors.ConfigurationError("the difference has no flow")
    return DocumentSync(diff.flow, acumatica=clients.acumatica, asana=clients.asana, **kwargs)


def _approvals(diff: ReconciliationDifference):
    from integrations.flows.approvals import release as approvals

    flow = approvals_flow_for(diff.tenant, diff.flow.asana_project_gid if diff.flow else "")
    if flow is None:
        raise errors.ConfigurationError("no enabled approvals flow on the task's project")
    return approvals, flow


def preview(diff: ReconciliationDifference, clients: Clients | None = None) -> Preview:
    clients = clients or report.clients_for(diff.tenant)
    p = Preview(diff.record_link_id or 0, diff.key, "none", handler="reconciliation")
    try:
        return _preview(diff, clients, p)
    except (errors.ConnectorError, errors.ConfigurationError) as exc:
        p.runnable, p.reason = False, f"could not read: {exc}"
        return p


def _preview(diff: ReconciliationDifference, clients: Clients, p: Preview) -> Preview:
    kind = diff.difference
    if kind in ("unlinked_document", "missing_document"):
        plan = _doc_sync(diff, clients, dry_run=True).process(diff.acumatica_type, diff.acumatica_ref).plan
        p.action = plan.action
        if plan.action == "create":
            p.diff = {"task": [None, plan.payload.get("name")]}
            p.diff.update(
                {f"field {g}": [None, v] for g, v in (plan.payload.get("custom_fields") or {}).items()}
            )
        elif plan.action == "close":
            p.diff = {
                "task": ["open", f"closed ({plan.close_how})"],
                "record": [diff.record_link.state if diff.record_link else None, "ended"],
            }
        else:
            p.diff = dict(plan.diff or {})
        p.summary = {
            "create": "the task is missing: the documents flow would create it",
            "close": f"the document is gone: the flow would close its task ({plan.reason})",
            "update": "the task would be brought up to date",
        }.get(plan.action, f"{plan.action}: {plan.reason}")
        p.runnable = plan.action in ("create", "close", "update")
        p.reason = "" if p.runnable else f"nothing to do now ({plan.reason or plan.action})"
    elif kind == "approved_unreleased":
        approvals, flow = _approvals(diff)
        task = clients.asana.get_task(diff.asana_task_gid)
        approved, why = approval_verdict(flow, task)
        link = diff.record_link
        reader = clients.acumatica.get_bill if link.kind == "bill" else clients.acumatica.get_purchase_order
        status = reader(link.acumatica_type, link.acumatica_ref, expand=None).get("Status")
        p.action = "release" if approved else "skip"
        p.diff = {"Status": [status, "Open (released)" if approved else status]}
        p.summary = (
            f"approved ({why}): the approvals flow would release it, behind its guards"
            if approved
            else f"no longer approved ({why}): nothing would be released"
        )
        p.runnable = approved
        p.reason = "" if approved else "the task is no longer approved"
    elif kind == "released_task_open":
        flow = approvals_flow_for(diff.tenant, diff.flow.asana_project_gid if diff.flow else "")
        options = (flow.options or {}) if flow else {}
        field_gid = options.get("outcome_field_gid")
        option = (options.get("outcome_options") or {}).get("released")
        if field_gid and option:
            p.diff = {f"outcome field {field_gid}": ["(not released)", option]}
        else:
            p.diff = {"completed": [False, True]}
        p.diff["comment"] = [None, RELEASE_COMMENT.format(status=diff.data.get("status", "released"))]
        p.action, p.summary = "write_outcome", "the task would show the release"
    elif kind == "pr_approved_no_po":
        task = clients.asana.get_task(diff.asana_task_gid)
        approved, why = approval_verdict(diff.flow, task)
        p.action = "create_po" if approved else "skip"
        p.diff = {"Sage 100 PO": [None, f"one PO for '{task.get('name')}' (amount {diff.amount})"]}
        p.summary = (
            f"approved ({why}): the purchase request flow would create exactly one PO"
            if approved
            else f"no longer approved ({why})"
        )
        p.runnable = approved
        p.reason = "" if approved else "the request is no longer approved"
    elif kind == "po_status_mismatch":
        po = clients.sage.get_purchase_order(diff.sage_po_number)
        expected = expected_status_value(diff.record_link.flow, str(po.get("status") or ""))
        if expected is None:
            p.runnable, p.reason = False, "the flow maps no task value for this Sage status"
        else:
            p.diff = {f"status field {expected[0]}": [diff.data.get("shown"), expected[1]]}
            p.action, p.summary = (
                "write_status",
                f"Sage holds status {po.get('status')}: the task would show it",
            )
    else:
        p.runnable, p.reason = False, f"no fix for {kind}"
    return p


def enqueue(diff: ReconciliationDifference, *, actor: str) -> SyncRun:
    from django_q.tasks import async_task

    run = SyncRun.objects.create(
        tenant=diff.tenant,
        flow=diff.flow,
        trigger=SyncRun.Trigger.REPLAY,
        triggered_by=actor,
        progress_total=1,
        message=f"reconciliation fix of {diff.difference} {diff.key} by {actor}",
    )
    ReconciliationDifference.objects.filter(pk=diff.pk).update(fix_run=run)
    async_task(fix_difference, diff.pk, actor, run.pk)
    return run


def fix_difference(difference_id: int, actor: str, run_id: int) -> str:
    """The django-q2 task (queued as this function, not a dotted string)."""
    diff = (
        ReconciliationDifference.objects.select_related("tenant", "flow", "record_link__flow")
        .filter(pk=difference_id)
        .first()
    )
    run = SyncRun.objects.filter(pk=run_id).first()
    if diff is None or run is None:
        return "difference or run gone"
    return execute(diff, actor=actor, run=run)


def execute(
    diff: ReconciliationDifference, *, actor: str, run: SyncRun, clients: Clients | None = None
) -> str:
    clients = clients or report.clients_for(diff.tenant)
    before = preview(diff, clients)
    with audit_context(run=run, actor=actor, tenant_id=diff.tenant_id, record_link=diff.record_link):
        if not before.runnable:
            result = f"not run: {before.reason}"
            status = "skipped"
        else:
            try:
                result, status = _execute(diff, clients, actor=actor, run=run), "succeeded"
            except (errors.ConnectorError, errors.ConfigurationError) as exc:
                result, status = f"failed: {exc}", "failed"
        record_entry(
            tenant=diff.tenant,
            flow=diff.flow,
            operation="reconciliation.fix",
            status=status,
            record_key=diff.key,
            payload={
                "difference": diff.difference,
                "id": diff.pk,
                "run": diff.run_id,
                "preview": before.diff,
            },
            error=result if status != "succeeded" else "",
        )
    outcome = SyncRun.Status.SUCCEEDED if status == "succeeded" else SyncRun.Status.FAILED
    SyncRun.objects.filter(pk=run.pk).update(
        status=outcome,
        finished_at=timezone.now(),
        progress_done=1,
        counts={status: 1},
        message=f"{run.message}\n{result}"[-2000:],
    )
    return result


def _execute(diff: ReconciliationDifference, clients: Clients, *, actor: str, run: SyncRun) -> str:
    kind, link = diff.difference, diff.record_link
    if kind in ("unlinked_document", "missing_document"):
        outcome = _doc_sync(diff, clients, run=run, actor=actor).process(
            diff.acumatica_type, diff.acumatica_ref
        )
        return f"{outcome.plan.action}: {outcome.status}"
    if kind == "approved_unreleased":
        approvals, flow = _approvals(diff)
        return approvals.handle_task_change(
            flow,
            diff.asana_task_gid,
            clients=clients,
        )
    if kind == "released_task_open":
        flow = approvals_flow_for(diff.tenant, diff.flow.asana_project_gid if diff.flow else "")
        options = (flow.options or {}) if flow else {}
        field_gid = options.get("outcome_field_gid")
        option = (options.get("outcome_options") or {}).get("released")
        if field_gid and option:
            clients.asana.update_task(diff.asana_task_gid, {"custom_fields": {field_gid: option}})
        else:
            clients.asana.complete_task(diff.asana_task_gid)
        clients.asana.add_comment(
            diff.asana_task_gid, RELEASE_COMMENT.format(status=diff.data.get("status", "released"))
        )
        if link is not None:
            snapshot = dict(link.approved_snapshot or {})
            snapshot.setdefault("outcome_written", "released")
            RecordLink.objects.filter(pk=link.pk).update(approved_snapshot=snapshot)
        return "the task shows the release"
    if kind == "pr_approved_no_po":
        from integrations.flows.purchase_requests.orders import process_purchase_request

        return process_purchase_request(
            diff.flow, diff.asana_task_gid, asana=clients.asana, sage=clients.sage
        )
    if kind == "po_status_mismatch":
        from integrations.flows.po_status.sync import apply_po

        po = clients.sage.get_purchase_order(diff.sage_po_number)
        field_gid = diff.data.get("field")
        with transaction.atomic():
            locked = RecordLink.objects.select_for_update().get(pk=link.pk)
            payload = dict(locked.last_payload or {})
            payload.pop("status_written_for", None)  # what we believed written no longer holds
            payload["custom_fields"] = {
                g: v for g, v in (payload.get("custom_fields") or {}).items() if g != field_gid
            }
            locked.last_payload = payload
            locked.save(update_fields=["last_payload", "updated_at"])
        flow = locked.flow or Flow.objects.get(pk=diff.flow_id)
        return f"status {po.get('status')}: {apply_po(flow, po, asana=clients.asana)}"
    raise errors.ConfigurationError(f"no fix for {kind}")
