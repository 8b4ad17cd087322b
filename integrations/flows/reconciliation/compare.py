"""Three-way reconciliation of one tenant: what fell between Acumatica, Asana and Sage 100.

Classes of difference (DIFFERENCES), each read through the tenant's own clients:

    unlinked_document     an open Acumatica bill / PO (the flow's status filter, else OPEN_STATUSES) with
                          no task: no live link, or a link still creating / failed without a task.
                          Quarantined and parked links are not counted: they carry their reason already.
    missing_document      a live link's task whose Acumatica document no longer exists (404)
    approved_unreleased   the task is approved under the approvals flow's rule, the document is not
                          released (not Open/Closed; POs: Open/Completed/Closed)
    released_task_open    the document is released, and the task does not show it (the approvals flow's
                          outcome field is not "released", or — without one — the task is not completed)
    pr_approved_no_po     an approved Asana purchase request with no Sage 100 PO (no link, or a link
                          creating / failed without a PO number)
    po_status_mismatch    a linked Sage PO whose status, through the flow's OrderStatus mapping, is not
                          what the task's status field shows

Reads: one listing of open documents per document flow, one task listing per project, one document GET
per live link not yet released (a released document cannot be deleted in Acumatica; its task only needs
the listing), one Sage PO GET per linked purchase request. A system that cannot be read makes the run
`partial`, with the classes it could not compare listed as skipped (never reported as "none").
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.asana import fields as cf
from integrations.base import errors
from integrations.flows.clients import Clients
from integrations.flows.common.approval import DONE_STATUSES, approval_verdict
from integrations.models import Flow, RecordLink, Tenant
from mappings.models import FieldMapping

log = logging.getLogger(__name__)

DIFFERENCES = {
    "unlinked_document": "Acumatica open bill / PO with no task",
    "missing_document": "Task whose Acumatica document no longer exists",
    "approved_unreleased": "Approved in Asana, not released in Acumatica",
    "released_task_open": "Released in Acumatica, task does not show it",
    "pr_approved_no_po": "Purchase request approved in Asana, no Sage 100 PO",
    "po_status_mismatch": "Sage 100 PO status differs from the task's",
}
DOCUMENT_CLASSES = ("unlinked_document", "missing_document", "approved_unreleased", "released_task_open")
SAGE_CLASSES = ("pr_approved_no_po", "po_status_mismatch")
OPEN_STATUSES = {
    "acumatica_bills": ("On Hold", "Balanced", "Pending Approval"),
    "acumatica_purchase_orders": ("On Hold", "Pending Approval"),
}
UNFINISHED_LINK_STATES = (RecordLink.State.CREATING, RecordLink.State.FAILED)
DOCUMENT_FLOW_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)
TASK_FIELDS = (
    "name",
    "completed",
    "resource_subtype",
    "approval_status",
    "custom_fields.gid",
    "custom_fields.type",
    "custom_fields.resource_subtype",
    "custom_fields.text_value",
    "custom_fields.number_value",
    "custom_fields.enum_value",
    "custom_fields.display_value",
)


@dataclass
class Found:
    difference: str
    key: str
    amount: Decimal = Decimal("0.00")
    detail: str = ""
    flow: Flow | None = None
    link: RecordLink | None = None
    acumatica_type: str = ""
    acumatica_ref: str = ""
    asana_task_gid: str = ""
    sage_po_number: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison:
    found: list[Found] = field(default_factory=list)
    compared: set[str] = field(default_factory=set)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def skip(self, classes: tuple[str, ...], why: str) -> None:
        for name in classes:
            self.compared.discard(name)
            if not any(s["difference"] == name for s in self.skipped):
                self.skipped.append({"difference": name, "why": why})

    def totals(self) -> dict[str, dict[str, Any]]:
        out = {name: {"count": 0, "amount": "0.00"} for name in DIFFERENCES if name in self.compared}
        sums: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for f in self.found:
            out.setdefault(f.difference, {"count": 0, "amount": "0.00"})
            out[f.difference]["count"] += 1
            sums[f.difference] += f.amount
        for name, total in sums.items():
            out[name]["amount"] = str(total.quantize(Decimal("0.01")))
        return out


def money(value: Any) -> Decimal:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value not in (None, "") else Decimal("0.00")
    except InvalidOperation:
        return Decimal("0.00")


# ---- Acumatica ↔ Asana --------------------------------------------------------------------------------


def approvals_flow_for(tenant: Tenant, project_gid: str) -> Flow | None:
    return (
        Flow.objects.filter(
            tenant=tenant, kind=Flow.Kind.ASANA_APPROVALS, enabled=True, asana_project_gid=project_gid
        )
        .order_by("pk")
        .first()
    )


def task_shows_release(approvals_flow: Flow | None, task: dict[str, Any]) -> bool:
    options = (approvals_flow.options or {}) if approvals_flow else {}
    field_gid = options.get("outcome_field_gid")
    released = (options.get("outcome_options") or {}).get("released")
    if field_gid and released:
        return cf.decode_custom_fields(task).get(field_gid) == released
    return bool(task.get("completed"))


def _project_tasks(asana: Any, project_gid: str) -> dict[str, dict[str, Any]]:
    return {t["gid"]: t for t in asana.iter_project_tasks(project_gid, fields=TASK_FIELDS)}


def _task(asana: Any, tasks: dict[str, dict[str, Any]], gid: str) -> dict[str, Any] | None:
    """From the project listing; a task moved out of the project is read by itself."""
    if gid in tasks:
        return tasks[gid]
    try:
        return asana.get_task(gid, fields=TASK_FIELDS)
    except errors.NotFound:
        return None


def compare_documents(tenant: Tenant, flow: Flow, clients: Clients, out: Comparison) -> None:
    is_bill = flow.kind == Flow.Kind.ACUMATICA_BILLS
    number, amount_field = ("ReferenceNbr", "Amount") if is_bill else ("OrderNbr", "OrderTotal")
    link_kind = RecordLink.Kind.BILL if is_bill else RecordLink.Kind.PURCHASE_ORDER
    statuses = tuple(flow.status_filter or ()) or OPEN_STATUSES[flow.kind]
    acu, asana = clients.acumatica, clients.asana
    lister = acu.iter_bills if is_bill else acu.iter_purchase_orders
    open_docs = list(lister(status_in=statuses))
    links = RecordLink.objects.filter(tenant=tenant, kind=link_kind).exclude(
        state__in=RecordLink.ENDED_STATES
    )
    by_key = {(lk.acumatica_type, lk.acumatica_ref): lk for lk in links}
    for doc in open_docs:
        key = (str(doc.get("Type")), str(doc.get(number)))
        link = by_key.get(key)
        if link is not None and (link.asana_task_gid or link.state not in UNFINISHED_LINK_STATES):
            continue
        out.found.append(
            Found(
                "unlinked_document",
                f"{key[0]} {key[1]}",
                money(doc.get(amount_field)),
                f"{doc.get('Status')} in Acumatica; "
                + (f"its link is {link.get_state_display().lower()}" if link else "never linked"),
                flow=flow,
                link=link,
                acumatica_type=key[0],
                acumatica_ref=key[1],
                data={"status": doc.get("Status"), "vendor": doc.get("Vendor") or doc.get("VendorID")},
            )
        )
    tasks = _project_tasks(asana, flow.asana_project_gid)
    approvals_flow = approvals_flow_for(tenant, flow.asana_project_gid)
    for link in links.filter(flow=flow).exclude(asana_task_gid=""):
        released = bool((link.approved_snapshot or {}).get("released_at"))
        status = "released by the connector" if released else ""
        amount = money((link.guarded_values or {}).get(amount_field))
        base = dict(
            flow=flow,
            link=link,
            acumatica_type=link.acumatica_type,
            acumatica_ref=link.acumatica_ref,
            asana_task_gid=link.asana_task_gid,
        )
        doc_key = f"{link.acumatica_type} {link.acumatica_ref}"
        if not released:
            try:
                document = (
                    acu.get_bill(link.acumatica_type, link.acumatica_ref, expand=None)
                    if is_bill
                    else acu.get_purchase_order(link.acumatica_type, link.acumatica_ref, expand=None)
                )
            except errors.NotFound:
                out.found.append(
                    Found("missing_document", doc_key, amount, "no such document in Acumatica", **base)
                )
                continue
            status = str(document.get("Status") or "")
            amount = money(document.get(amount_field)) if document.get(amount_field) is not None else amount
        task = _task(asana, tasks, link.asana_task_gid)
        if task is None:
            continue  # a deleted task is the documents flow's drift check (it recreates it)
        done = released or status in DONE_STATUSES[link.kind]
        if done and not task_shows_release(approvals_flow, task):
            out.found.append(
                Found(
                    "released_task_open",
                    doc_key,
                    amount,
                    f"{status} in Acumatica; the task does not show the release",
                    data={"status": status},
                    **base,
                )
            )
        elif not done and approvals_flow is not None:
            approved, why = approval_verdict(approvals_flow, task)
            if approved:
                out.found.append(
                    Found(
                        "approved_unreleased",
                        doc_key,
                        amount,
                        f"task approved ({why}); {status} in Acumatica"
                        + (f" — {link.state_reason}" if link.state_reason else ""),
                        data={"status": status, "approvals_flow": approvals_flow.pk},
                        **base,
                    )
                )


# ---- Asana ↔ Sage 100 ---------------------------------------------------------------------------------


def _mapping(flow: Flow, path: str, direction: str) -> FieldMapping | None:
    return FieldMapping.objects.filter(flow=flow, source_path=path, direction=direction).first()


def expected_status_value(flow: Flow, status: str) -> tuple[str, Any] | None:
    """(task field GID, wire value) the flow's OrderStatus mapping writes for a Sage status."""
    from mappings.convert import MappingSpec, convert_record

    mapping = (
        FieldMapping.objects.filter(
            flow=flow, source_path="OrderStatus", direction=FieldMapping.Direction.TO_ASANA
        )
        .prefetch_related("value_mappings")
        .first()
    )
    if mapping is None:
        return None
    values, _problems = convert_record({"OrderStatus": status}, [MappingSpec.from_model(mapping)])
    if mapping.asana_field_gid not in values:
        return None
    return mapping.asana_field_gid, values[mapping.asana_field_gid]


def compare_purchase_requests(tenant: Tenant, flow: Flow, clients: Clients, out: Comparison) -> None:
    asana, sage = clients.asana, clients.sage
    sage.ping()  # "no PO missing" is only worth saying when Sage answers
    links = {
        lk.asana_task_gid: lk
        for lk in RecordLink.objects.filter(tenant=tenant, kind=RecordLink.Kind.PURCHASE_REQUEST)
        .exclude(asana_task_gid="")
        .order_by("pk")
    }
    amount_map = _mapping(flow, "Amount", FieldMapping.Direction.TO_ERP)
    tasks = _project_tasks(asana, flow.asana_project_gid)
    for gid, task in tasks.items():
        approved, why = approval_verdict(flow, task)
        if not approved:
            continue
        link = links.get(gid)
        if link is not None and (link.sage_po_number or link.state not in UNFINISHED_LINK_STATES):
            continue
        shown = cf.decode_custom_fields(task)
        out.found.append(
            Found(
                "pr_approved_no_po",
                task.get("name") or gid,
                money(shown.get(amount_map.asana_field_gid) if amount_map else None),
                f"approved ({why}); "
                + (f"its link is {link.get_state_display().lower()}" if link else "never processed"),
                flow=flow,
                link=link,
                asana_task_gid=gid,
            )
        )
    for link in links.values():
        if not link.sage_po_number or link.state != RecordLink.State.LINKED or link.flow_id is None:
            continue
        try:
            po = sage.get_purchase_order(link.sage_po_number)
        except errors.NotFound:
            continue  # a vanished PO is the PO-status flow's reconcile check (it flags the task)
        expected = expected_status_value(link.flow, str(po.get("status") or ""))
        task = _task(asana, tasks, link.asana_task_gid)
        if expected is None or task is None:
            continue
        field_gid, want = expected
        entry = next((e for e in task.get("custom_fields") or [] if str(e.get("gid")) == field_gid), None)
        shown = cf.wire_value_of(entry) if entry else None
        if shown != want:
            out.found.append(
                Found(
                    "po_status_mismatch",
                    f"Sage PO {link.sage_po_number}",
                    money((po.get("totals") or {}).get("amount")),
                    f"Sage status {po.get('status')}; the task shows "
                    f"{(entry or {}).get('display_value') or shown or '(empty)'}",
                    flow=link.flow,
                    link=link,
                    asana_task_gid=link.asana_task_gid,
                    sage_po_number=link.sage_po_number,
                    data={"status": po.get("status"), "field": field_gid, "want": want, "shown": shown},
                )
            )


def compare(tenant: Tenant, clients: Clients) -> Comparison:
    """Every class of difference for `tenant`; a system that cannot be read skips its classes."""
    out = Comparison()
    flows = list(Flow.objects.filter(tenant=tenant, enabled=True).order_by("pk"))
    doc_flows = [f for f in flows if f.kind in DOCUMENT_FLOW_KINDS]
    pr_flows = [f for f in flows if f.kind == Flow.Kind.ASANA_PURCHASE_REQUESTS]
    if not doc_flows:
        out.skipped += [{"difference": n, "why": "no enabled bills / PO flow"} for n in DOCUMENT_CLASSES]
    elif not (hasattr(tenant, "acumatica") and hasattr(tenant, "asana")):
        out.skipped += [
            {"difference": n, "why": "the tenant lacks its Acumatica or Asana connection"}
            for n in DOCUMENT_CLASSES
        ]
    else:
        out.compared.update(DOCUMENT_CLASSES)
        for flow in doc_flows:
            try:
                compare_documents(tenant, flow, clients, out)
            except (errors.ConnectorError, errors.ConfigurationError) as exc:
                out.skip(DOCUMENT_CLASSES, f"{flow.name}: could not read: {exc}")
    if not pr_flows:
        out.skipped += [{"difference": n, "why": "no enabled purchase request flow"} for n in SAGE_CLASSES]
    elif not (hasattr(tenant, "sage100") and hasattr(tenant, "asana")):
        out.skipped += [
            {"difference": n, "why": "the tenant lacks its Sage 100 or Asana connection"}
            for n in SAGE_CLASSES
        ]
    else:
        out.compared.update(SAGE_CLASSES)
        for flow in pr_flows:
            try:
                compare_purchase_requests(tenant, flow, clients, out)
            except (errors.ConnectorError, errors.ConfigurationError) as exc:
                out.skip(SAGE_CLASSES, f"{flow.name}: could not read: {exc}")
    out.found = [f for f in out.found if f.difference in out.compared]
    return out
