"""The playground's pages: one HTML page, and the JSON it polls and posts to.

    index      the page (SIMULATED banner, the guided tour, the panes; everything else is fetched)
    state      the sandboxes as people see them: bills, POs, vendors, the Asana boards, webhooks, seats
    activity   what ml-connector did: its audit entries, record links and received events (its models)
    act        one person's action or one fault, POSTed as JSON {"action": ..., ...}

Access: a console login; the playground tenant must be one the user holds a role on (view to look,
operate to act) or the user a superuser — anyone else gets 404, as the console answers for another
tenant's objects. Nothing here reads another tenant's rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.template import Context, Engine
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from audit.models import AuditEntry, InboundEvent
from integrations.console import tenancy
from integrations.membership import Role
from integrations.models import Flow, RecordLink, Tenant

from . import config
from .client import SandboxError, control

POLL_SECONDS = 3
STORM = 8  # answers a 429 storm lasts
RECENT = 40
# The templates live in this package; a private engine, so the app needs no INSTALLED_APPS entry.
ENGINE = Engine(dirs=[str(Path(__file__).parent / "templates")], autoescape=True)
SAMPLE_BILL = {  # the tour's subcontractor bill (a vendor of the demo firm)
    "vendor": "SUMMITELEC",
    "amount": 7450.00,
    "vendor_ref": "SE-1102",
    "description": "Subcontractor progress billing, Building B electrical",
}


# ---- access -------------------------------------------------------------------------------------


def _tenant(request: HttpRequest, role: str = Role.VIEW) -> Tenant:
    tenant = Tenant.objects.filter(slug=config.tenant_slug()).first()
    if tenant is None or not tenancy.allowed(request.user, tenant.pk, Role.VIEW):
        raise Http404("no playground for you here")
    if not tenancy.allowed(request.user, tenant.pk, role):
        raise PermissionDenied("acting in the sandboxes needs the operate role on the demo tenant")
    return tenant


def _flows(tenant: Tenant) -> dict[str, Flow]:
    """The tenant's first flow of each kind."""
    out: dict[str, Flow] = {}
    for flow in Flow.objects.filter(tenant=tenant).order_by("pk"):
        out.setdefault(flow.kind, flow)
    return out


def _projects(tenant: Tenant) -> list[str]:
    """The Asana projects the tenant's flows work in, bills' first."""
    order = [
        Flow.Kind.ACUMATICA_BILLS,
        Flow.Kind.ASANA_APPROVALS,
        Flow.Kind.ACUMATICA_PURCHASE_ORDERS,
        Flow.Kind.ASANA_PURCHASE_REQUESTS,
        Flow.Kind.SAGE100_PO_STATUS,
    ]
    flows = _flows(tenant)
    projects: list[str] = []
    for kind in order:
        flow = flows.get(kind)
        if flow and flow.asana_project_gid and flow.asana_project_gid not in projects:
            projects.append(flow.asana_project_gid)
    return projects


# ---- pages --------------------------------------------------------------------------------------


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    tenant = _tenant(request)
    flows = _flows(tenant)
    bills = flows.get(Flow.Kind.ACUMATICA_BILLS)
    page = {
        "tenant": tenant,
        "csrf_token": get_token(request),
        "can_act": tenancy.allowed(request.user, tenant.pk, Role.OPERATE),
        "console_url": reverse("admin:index"),
        "config": json.dumps(
            {
                "state": reverse("playground:state"),
                "activity": reverse("playground:activity"),
                "act": reverse("playground:act"),
                "poll_ms": POLL_SECONDS * 1000,
                "sample_bill": SAMPLE_BILL,
                "bills_project": bills.asana_project_gid if bills else None,
                "bills_section": bills.asana_section_gid if bills else None,
            }
        ),
        "sandboxes": config.sandboxes_of(tenant),
    }
    html = ENGINE.get_template("playground/index.html").render(Context(page))
    return HttpResponse(html)


def _call(errors: dict[str, str], system: str, base: str | None, name: str, **params: Any) -> Any:
    try:
        return control(base, name, **params)
    except SandboxError as exc:
        errors.setdefault(system, str(exc))
        return None


@require_GET
def state(request: HttpRequest) -> JsonResponse:
    tenant = _tenant(request)
    urls = config.sandboxes_of(tenant)
    errors: dict[str, str] = {}
    bills = _call(errors, "acumatica", urls.acumatica_url, "list_records", entity="Bill") or []
    orders = _call(errors, "acumatica", urls.acumatica_url, "list_records", entity="PurchaseOrder") or []
    vendors = _call(errors, "acumatica", urls.acumatica_url, "list_records", entity="Vendor") or []
    seats = _call(errors, "acumatica", urls.acumatica_url, "seats")
    boards = []
    for project in _projects(tenant):
        board = _call(errors, "asana", urls.asana_url, "project_board", project=project)
        if board:
            boards.append(board)
    webhooks = _call(errors, "asana", urls.asana_url, "list_webhooks") or []
    return JsonResponse(
        {
            "bills": [
                {
                    "type": b.get("Type"),
                    "nbr": b.get("ReferenceNbr"),
                    "status": b.get("Status"),
                    "vendor": b.get("Vendor"),
                    "amount": b.get("Amount"),
                    "due_date": (b.get("DueDate") or "")[:10],
                    "description": b.get("Description", ""),
                    "vendor_ref": b.get("VendorRef", ""),
                    "modified": b.get("LastModifiedDateTime"),
                }
                for b in bills
            ],
            "purchase_orders": [
                {
                    "type": o.get("Type"),
                    "nbr": o.get("OrderNbr"),
                    "status": o.get("Status"),
                    "vendor": o.get("VendorID"),
                    "amount": o.get("OrderTotal"),
                    "description": o.get("Description", ""),
                }
                for o in orders
            ],
            "vendors": [{"id": v.get("VendorID"), "name": v.get("VendorName")} for v in vendors],
            "boards": boards,
            "webhooks": webhooks,
            "seats": seats,
            "errors": errors,
        }
    )


def _lineage(link_id: int | None) -> str | None:
    return reverse("admin:integrations_recordlink_lineage", args=[link_id]) if link_id else None


@require_GET
def activity(request: HttpRequest) -> JsonResponse:
    """What ml-connector did, newest first — only this tenant's rows."""
    tenant = _tenant(request)
    entries = (
        AuditEntry.objects.filter(tenant=tenant)
        .select_related("flow")
        .order_by("-created_at", "-pk")[:RECENT]
    )
    links = RecordLink.objects.filter(tenant=tenant).order_by("-updated_at", "-pk")[:RECENT]
    events = InboundEvent.objects.filter(tenant=tenant).order_by("-received_at", "-pk")[:RECENT]
    return JsonResponse(
        {
            "entries": [
                {
                    "id": e.pk,
                    "at": e.created_at.isoformat(),
                    "operation": e.operation,
                    "status": e.status,
                    "record_key": e.record_key,
                    "flow": e.flow.name if e.flow else "",
                    "error": (e.error or "")[:300],
                    "lineage": _lineage(e.record_link_id),
                }
                for e in entries
            ],
            "links": [
                {
                    "id": link.pk,
                    "kind": link.kind,
                    "type": link.acumatica_type,
                    "nbr": link.acumatica_ref,
                    "task": link.asana_task_gid,
                    "sage_po": link.sage_po_number,
                    "state": link.state,
                    "updated": link.updated_at.isoformat(),
                    "lineage": _lineage(link.pk),
                }
                for link in links
            ],
            "events": [
                {
                    "id": ev.pk,
                    "at": ev.received_at.isoformat(),
                    "source": ev.source,
                    "status": ev.status,
                    "reason": (ev.status_reason or "")[:200],
                }
                for ev in events
            ],
        }
    )


# ---- acting as people, and faults -----------------------------------------------------------------


class Refused(Exception):
    pass


def _need(params: dict[str, Any], *names: str) -> list[Any]:
    missing = [n for n in names if params.get(n) in (None, "")]
    if missing:
        raise Refused(f"missing: {', '.join(missing)}")
    return [params[n] for n in names]


def _amount(value: Any) -> float:
    try:
        amount = round(float(value), 2)
    except (TypeError, ValueError):
        raise Refused(f"{value!r} is not an amount") from None
    if amount <= 0:
        raise Refused("an amount is more than zero")
    return amount


def _approval(
    tenant: Tenant, urls: config.Sandboxes, gid: str, project: str | None, approve: bool
) -> tuple[Any, str]:
    """Approve or reject the task the way the flow reading that project's approvals does: the approvals
    flow's rule (an enum field, an approval task, completion), or the purchase requests flow's."""
    flows = _flows(tenant)
    candidates = [flows.get(Flow.Kind.ASANA_APPROVALS), flows.get(Flow.Kind.ASANA_PURCHASE_REQUESTS)]
    flow = next((f for f in candidates if f and project and f.asana_project_gid == project), candidates[0])
    verb = "approved" if approve else "rejected"
    if flow and flow.approval_rule == Flow.ApprovalRule.ENUM_OPTION:
        option = flow.approval_option_gid
        if not approve:
            board = control(urls.asana_url, "project_board", project=flow.asana_project_gid)
            field = next((f for f in board["fields"] if f["gid"] == flow.approval_field_gid), None)
            options = {o["name"].lower(): o["gid"] for o in (field or {}).get("options", [])}
            option = options.get("rejected")
            if option is None:
                raise Refused("the approval field has no 'Rejected' option")
        result = control(
            urls.asana_url, "person_edit_task", gid=gid, custom_fields={flow.approval_field_gid: option}
        )
        return result, f"A person set the approval field: {verb}"
    if flow and flow.approval_rule == Flow.ApprovalRule.COMPLETED and approve:
        return control(urls.asana_url, "person_complete", gid=gid), "A person completed the task"
    name = "person_approve" if approve else "person_reject"
    return control(urls.asana_url, name, gid=gid), f"A person {verb} the approval task"


def _act(tenant: Tenant, action: str, p: dict[str, Any]) -> tuple[Any, str]:
    urls = config.sandboxes_of(tenant)
    acu, asana = urls.acumatica_url, urls.asana_url
    if action == "enter_bill":
        (vendor,) = _need(p, "vendor")
        fields = {k: p[k] for k in ("description", "vendor_ref", "due_date") if p.get(k)}
        bill = control(acu, "person_enter_bill", vendor=vendor, amount=_amount(p.get("amount")), **fields)
        return bill, f"A person entered bill {bill['ReferenceNbr']} for {vendor} in Acumatica"
    if action == "edit_bill":
        doc_type, nbr = _need(p, "type", "nbr")
        changes = {k: p[k] for k in ("vendor", "description", "due_date", "vendor_ref") if p.get(k)}
        if p.get("amount") not in (None, ""):
            changes["amount"] = _amount(p["amount"])
        if not changes:
            raise Refused("nothing to change")
        control(acu, "person_edit_bill", type=doc_type, nbr=nbr, **changes)
        return changes, f"A person edited bill {nbr}: {', '.join(changes)}"
    if action == "delete_bill":
        doc_type, nbr = _need(p, "type", "nbr")
        return control(acu, "person_delete_bill", type=doc_type, nbr=nbr), f"A person deleted bill {nbr}"
    if action in ("approve_task", "reject_task"):
        (gid,) = _need(p, "gid")
        return _approval(tenant, urls, gid, p.get("project"), approve=action == "approve_task")
    if action == "rename_task":
        gid, name = _need(p, "gid", "name")
        result = control(asana, "person_edit_task", gid=gid, name=str(name)[:200])
        return result, f"A person renamed the task to {name!r}"
    if action == "move_task":
        gid, project, section = _need(p, "gid", "project", "section")
        if project not in _projects(tenant):
            raise Refused("that project is not one of this tenant's")
        result = control(asana, "person_move_task", gid=gid, project=project, section=section)
        return result, "A person moved the task to another section"
    if action == "delete_webhook":
        (gid,) = _need(p, "gid")
        if gid not in {w["gid"] for w in control(asana, "list_webhooks")}:
            raise Refused(f"no webhook {gid}")
        result = control(asana, "delete_webhook_silently", gid=gid)
        return result, "Asana deleted the webhook (without telling anyone)"
    if action == "fault":
        return _fault(urls, p.get("kind"))
    raise Refused(f"unknown action {action!r}")


def _fault(urls: config.Sandboxes, kind: Any) -> tuple[Any, str]:
    if kind in ("asana_429", "acumatica_429"):
        system, base = ("Asana", urls.asana_url) if kind == "asana_429" else ("Acumatica", urls.acumatica_url)
        result = control(base, "inject_fault", kind="status", status=429, retry_after=2, times=STORM)
        return (
            result,
            f"429 storm: {system}'s next {STORM} answers are 429 Too Many Requests (Retry-After 2 s)",
        )
    if kind == "lost_answer":
        result = control(
            urls.asana_url, "inject_fault", kind="drop_after_write", method="POST", path="^/tasks$", times=1
        )
        return result, "Lost answer: the next task ml-connector creates in Asana is made; its answer is lost"
    if kind == "seats":
        seats = control(urls.acumatica_url, "seats")
        control(urls.acumatica_url, "hold_seats", n=seats["limit"])
        control(urls.acumatica_url, "expire_access_tokens")
        return seats, "Seat exhaustion: another integration holds every Acumatica API seat; sessions ended"
    if kind == "clear":
        cleared = 0
        for base in (urls.acumatica_url, urls.asana_url):
            cleared += control(base, "clear_faults") or 0
        control(urls.acumatica_url, "hold_seats", n=0)
        return cleared, f"Faults cleared ({cleared} pending), Acumatica seats freed"
    raise Refused(f"unknown fault {kind!r}")


@require_POST
def act(request: HttpRequest) -> JsonResponse:
    tenant = _tenant(request, Role.OPERATE)
    try:
        params = json.loads(request.body or b"{}")
        if not isinstance(params, dict):
            raise ValueError("not an object")
    except ValueError:
        return JsonResponse({"ok": False, "error": "the request is not a JSON object"}, status=400)
    action = str(params.pop("action", ""))
    try:
        result, message = _act(tenant, action, params)
    except Refused as exc:
        return JsonResponse({"ok": False, "error": str(exc)}, status=400)
    except SandboxError as exc:
        return JsonResponse({"ok": False, "error": f"the sandbox refused: {exc}"}, status=502)
    return JsonResponse({"ok": True, "message": message, "result": result})


def wrap(view):
    """The console's login: an admin view (staff login, redirect to the console's login page)."""
    return admin.site.admin_view(view)
