"""Stuck-approval escalation (finance controls, issue 20): a scheduled sweep over the documents whose
approval is still pending. One alert per task per threshold — pending for N business days (a holiday
calendar per flow), or the due date / the early-payment discount date (Acumatica's DiscDate, from the
vendor's terms) within M days — as a comment on the task mentioning the approver, an e-mail to the
console-configured recipients (Django's mail framework; SMTP from the environment) and an audit row the
dashboard lists with the amount at stake and the discount at risk.

Deduplicated by the audit row's key (link, generation, the approval request — Asana's time of the last
guarded write — and the threshold): a moved approval (approved, or reset by a change) stops the alerts
of the old request; a new request starts its own.
"""

from __future__ import annotations

import logging
from datetime import date

from django.core.mail import send_mail
from django.utils import timezone

from audit.models import AuditEntry
from audit.recorder import record_entry
from integrations.base import errors, schedules
from integrations.flows import clients as flow_clients
from integrations.flows.common import control_effects as fx
from integrations.flows.common.approval import DONE_STATUSES, approval_verdict
from integrations.flows.common.controls import calendar, rules
from integrations.flows.common.controls.config import controls_of
from integrations.models import Flow, RecordLink

log = logging.getLogger(__name__)

OPERATION = "controls.escalation"
DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)
CUSTOM = ("Document.DiscDate", "Document.CuryOrigDiscAmt")
PROFILE_URL = "https://app.asana.com/0/profile/{gid}"


def sweep(tenant_id: int | None = None, today: date | None = None) -> str:
    """The django-q2 entry point (every hour: `ensure_schedule`)."""
    today = today or timezone.localdate()
    flows = Flow.objects.filter(enabled=True, kind__in=DOCUMENT_KINDS, tenant__active=True).select_related(
        "tenant"
    )
    if tenant_id:
        flows = flows.filter(tenant_id=tenant_id)
    out = []
    for flow in flows:
        esc = controls_of(flow.options).escalation
        if not esc.enabled:
            continue
        try:
            out.append(f"{flow}: {_sweep_flow(flow, esc, today)}")
        except errors.ConnectorError as exc:
            log.warning("escalation sweep of %s stopped: %s", flow, exc)
            out.append(f"{flow}: stopped, the next sweep retries ({exc})")
    return "; ".join(out) or "no flow escalates"


def _approvals_flow(flow: Flow) -> Flow | None:
    return (
        Flow.objects.filter(
            tenant=flow.tenant,
            kind=Flow.Kind.ASANA_APPROVALS,
            enabled=True,
            asana_project_gid=flow.asana_project_gid,
        )
        .order_by("pk")
        .first()
    )


def _sweep_flow(flow: Flow, esc, today: date) -> str:
    approvals = _approvals_flow(flow)
    if approvals is None:
        return "no approvals flow on its project"
    clients = flow_clients.clients_for(flow.tenant)
    sent = 0
    links = RecordLink.objects.filter(flow=flow, state=RecordLink.State.LINKED).exclude(asana_task_gid="")
    pending = [
        link
        for link in links.exclude(guarded_written_at=None)
        if not (link.approved_snapshot or {}).get("released_at")
    ]
    # The project's open tasks in one paged read (100 a page), not one read per pending approval; a
    # task not among them (completed, or moved out) is read on its own.
    open_tasks: dict[str, dict] = {}
    if len(pending) > 1:
        # completed since Asana's now: the tasks not completed (the spec's date-time, not "now")
        now = clients.asana.asana_now()
        open_tasks = {
            str(t["gid"]): t
            for t in clients.asana.iter_project_tasks(flow.asana_project_gid, completed_since=now)
        }
    for link in pending:
        sent += _check_link(flow, approvals, link, esc, today, clients, open_tasks.get(link.asana_task_gid))
    return f"{sent} escalation(s) sent"


def _check_link(
    flow: Flow, approvals: Flow, link: RecordLink, esc, today: date, clients, task: dict | None = None
) -> int:
    task = task or clients.asana.get_task(link.asana_task_gid)
    approved, _ = approval_verdict(approvals, task)
    waiting_levels = bool((link.approved_snapshot or {}).get("levels_noted"))
    if approved and not waiting_levels:
        return 0  # the approval moved: nothing is stuck
    is_bill = link.kind == RecordLink.Kind.BILL
    entity = "Bill" if is_bill else "PurchaseOrder"
    document = clients.acumatica.get(
        entity, (link.acumatica_type, link.acumatica_ref), custom=CUSTOM if is_bill else None
    )
    if document.get("Status") in DONE_STATUSES[link.kind]:
        return 0
    custom = getattr(document, "custom", {}) or {}
    due = rules.as_day(document.get("DueDate") or document.get("PromisedOn"))
    discount_date = rules.as_day(custom.get("Document.DiscDate"))
    discount = custom.get("Document.CuryOrigDiscAmt")
    request = link.guarded_written_at
    crossed = calendar.crossed_thresholds(
        esc,
        pending_since=timezone.localtime(request).date(),
        today=today,
        due_date=due,
        discount_date=discount_date,
    )
    sent = 0
    for threshold in crossed:
        key = f"escalation:{link.pk}:{link.generation}:{request.isoformat()}:{threshold.key}"
        if AuditEntry.objects.filter(tenant=link.tenant, operation=OPERATION, idempotency_key=key).exists():
            continue
        amount = document.get("Amount") if is_bill else document.get("OrderTotal")
        approver = str((task.get("assignee") or {}).get("gid") or "")
        _notify(
            flow, link, task, threshold, approver, amount, discount, discount_date, esc.recipients, clients
        )
        record_entry(
            tenant=link.tenant,
            flow=flow,
            record_link=link,
            operation=OPERATION,
            status="succeeded",
            record_key=fx.label(link),
            idempotency_key=key,
            error=threshold.message,
            payload={
                "threshold": threshold.key,
                "amount": str(amount) if amount is not None else None,
                "discount_amount": str(discount) if discount is not None else None,
                "discount_date": discount_date.isoformat() if discount_date else None,
                "due_date": due.isoformat() if due else None,
                "approver": approver,
                "task_gid": link.asana_task_gid,
                "recipients": list(esc.recipients),
            },
        )
        sent += 1
    return sent


def _notify(
    flow, link, task, threshold, approver, amount, discount, discount_date, recipients, clients
) -> None:
    label = fx.label(link)
    who = PROFILE_URL.format(gid=approver) if approver else "approvers"
    at_risk = f"; early-payment discount at risk: {discount} by {discount_date}" if discount else ""
    text = (
        f"Approval stuck: {label} ({amount}) is {threshold.message}{at_risk}. "
        f"{who}, please approve or reject."
    )
    url = task.get("permalink_url") or f"https://app.asana.com/0/0/{link.asana_task_gid}"
    # The e-mail first: if the mail server refuses it, nothing is recorded and the next sweep tries
    # again (the comment would otherwise be repeated without its e-mail ever going out).
    send_mail(
        subject=f"[ml-connector] Approval stuck: {label} — {threshold.message}",
        message=f"{text}\n\nTask: {url}\nTenant: {flow.tenant.name}\nFlow: {flow.name}\n",
        from_email=None,
        recipient_list=list(recipients),
        fail_silently=False,
    )
    fx.comment(clients.asana, link.asana_task_gid, text)


def ensure_schedule() -> str:
    return schedules.ensure(
        "controls:escalation", "integrations.flows.operations.escalation.sweep", hourly=True
    )
