"""The fit report: a read-only dry run on the customer's real data, before anything is switched on.

For each bills / purchase-orders flow the wizard configured (still disabled), the last
`LAST_DOCUMENTS` documents are read from Acumatica and each is planned with the documents flow's
pure planner (`integrations.flows.documents.plan.plan_document`, the same decision a pass takes): what the
task would look like (name and every mapped field by name), which documents would be skipped or
held back and why, which vendors have no option in an enum vendor field. Beside it: the approve /
release actions this Acumatica offers against the ones the flows need, and the API seats and rate
budgets the connector would use.

Only GETs reach the customer's systems (sign-in and sign-out aside: an OAuth token or a cookie
session is how a read is allowed); tests/setup/test_fit_report.py holds the sandboxes to that.
The report is plain JSON (stored on SetupProgress, printed by the console and `connector setup`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from integrations.acumatica import actions as acu_actions
from integrations.acumatica.client import client_for as acumatica_client
from integrations.base import errors
from integrations.flows.documents.plan import DOCUMENT_TYPES, LinkView, plan_document
from integrations.flows.documents.settings import flow_settings
from integrations.models import Flow, RecordLink, Tenant
from mappings.models import FieldMapping, ValueMapping

from . import asana_discovery

LAST_DOCUMENTS = 20
# Read windows, newest first: stop as soon as one holds enough documents (never the whole history
# of a large ledger when the last weeks suffice).
WINDOWS_DAYS = (30, 180, None)
DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)


def _moment(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def last_documents(client: Any, entity: str, n: int = LAST_DOCUMENTS, *, now: datetime | None = None) -> list:
    """The `n` most recently modified documents of `entity` (no $orderby in contract REST, §4.2)."""
    now = now or timezone.now()
    reader = client.iter_bills if entity == "Bill" else client.iter_purchase_orders
    found: list = []
    for days in WINDOWS_DAYS:
        since = now - timedelta(days=days) if days else None
        found = list(reader(modified_since=since, select=None))
        if len(found) >= n:
            break
    found.sort(key=lambda r: _moment(r.get("LastModifiedDateTime")), reverse=True)
    return found[:n]


def _display(spec: Any, value: Any) -> str:
    if value is None:
        return "—"
    if spec is not None and spec.enum_options and isinstance(value, str):
        option = spec.enum_options.get(value)
        return option.name if option else value
    if isinstance(value, dict) and ("date" in value or "date_time" in value):
        return str(value.get("date") or value.get("date_time"))  # Asana's date field shape
    if isinstance(value, float) and spec is not None and spec.precision is not None:
        return f"{value:.{spec.precision}f}"
    return str(value)


def _task_preview(payload: dict[str, Any], specs: dict[str, Any]) -> list[list[str]]:
    rows = [["Task name", str(payload.get("name") or "")]]
    for gid, value in (payload.get("custom_fields") or {}).items():
        spec = specs.get(gid)
        rows.append([spec.name if spec else gid, _display(spec, value)])
    return rows


def _vendor_gaps(flow: Flow, specs: dict[str, Any], vendors: list[dict[str, Any]]) -> tuple[str, list[dict]]:
    """The enum vendor field (if the vendor is mapped to one) and the vendors with no option for it."""
    doc = DOCUMENT_TYPES[flow.kind]
    path = "Vendor" if doc.entity == "Bill" else "VendorID"
    mapping = FieldMapping.objects.filter(flow=flow, source_path=path, direction="to_asana").first()
    if mapping is None:
        return "", []
    spec = specs.get(mapping.asana_field_gid)
    if spec is None or spec.type != "enum":
        return "", []
    mapped = set(
        ValueMapping.objects.filter(field_mapping=mapping, kind="enum_option").values_list(
            "source_value", flat=True
        )
    )
    enabled = {o.gid for o in spec.enum_options.values() if o.enabled}
    targets = dict(
        ValueMapping.objects.filter(field_mapping=mapping, kind="enum_option").values_list(
            "source_value", "target_value"
        )
    )
    gaps = [
        {"vendor_id": str(v.get("VendorID")), "vendor_name": str(v.get("VendorName") or "")}
        for v in vendors
        if str(v.get("VendorID")) not in mapped or targets.get(str(v.get("VendorID"))) not in enabled
    ]
    return spec.name, gaps


def _flow_report(flow: Flow, acu: Any, asana_conn: Any, vendors: list[dict[str, Any]]) -> dict[str, Any]:
    doc = DOCUMENT_TYPES[flow.kind]
    report: dict[str, Any] = {
        "flow": flow.name,
        "kind": flow.get_kind_display(),
        "entity": doc.entity,
        "project_gid": flow.asana_project_gid,
        "documents": [],
        "counts": {},
        "problems": [],
    }
    try:
        specs = asana_discovery.fields(asana_conn, flow.asana_project_gid)
    except errors.ConnectorError as exc:
        report["problems"].append(f"the Asana project {flow.asana_project_gid} could not be read: {exc}")
        return report
    settings = flow_settings(flow)
    links = {
        f"{lk.acumatica_type}/{lk.acumatica_ref}": lk
        for lk in RecordLink.objects.filter(flow=flow).exclude(state__in=RecordLink.ENDED_STATES)
    }
    try:
        records = last_documents(acu, doc.entity)
    except errors.ConnectorError as exc:
        report["problems"].append(f"Acumatica's {doc.entity} list could not be read: {exc}")
        return report
    for record in records:
        key = f"{record.get('Type')}/{record.get(doc.number_field)}"
        link = links.get(key)
        view = (
            LinkView(link.state, link.asana_task_gid, link.payload_hash, link.last_payload)
            if link
            else LinkView()
        )
        plan = plan_document(record, settings, view, specs)
        report["counts"][plan.action] = report["counts"].get(plan.action, 0) + 1
        report["documents"].append(
            {
                "key": key,
                "status": str(record.get("Status") or ""),
                "modified": _moment(record.get("LastModifiedDateTime"))[:19],
                "action": plan.action,
                "reason": plan.reason,
                "task": _task_preview(plan.payload, specs) if plan.payload else [],
            }
        )
    report["vendor_field"], report["vendors_without_option"] = _vendor_gaps(flow, specs, vendors)
    return report


def _actions(acu: Any, connection: Any, flows: Iterable[Flow]) -> dict[str, Any]:
    """What `$adHocSchema` offers per entity, what these flows need, and what is missing."""
    offered: dict[str, list[str]] = {}
    for entity in acu_actions.ENTITIES:
        try:
            offered[entity] = acu_actions.read_actions(acu, entity)
        except errors.ConnectorError as exc:
            offered[entity] = []
            offered[f"{entity}_error"] = str(exc)  # type: ignore[assignment]
    need: dict[str, set[str]] = {"Bill": set(), "PurchaseOrder": set()}
    for flow in flows:
        if flow.kind == Flow.Kind.ACUMATICA_BILLS:
            need["Bill"].add("ReleaseBill")
        elif flow.kind == Flow.Kind.ACUMATICA_PURCHASE_ORDERS:
            need["PurchaseOrder"].add(str((flow.options or {}).get("po_action") or "Approve"))
    if connection.uses_approval_maps:
        need["Bill"].add("Approve")
        need["PurchaseOrder"].add("Approve")
    return {
        "offered": {e: [a for a in acu_actions.OF_INTEREST[e] if a in offered.get(e, [])] for e in need},
        "needed": {e: sorted(n) for e, n in need.items()},
        "missing": {
            e: sorted(n - set(offered.get(e, []))) for e, n in need.items() if n - set(offered.get(e, []))
        },
    }


def _budgets(acu_conn: Any, asana_conn: Any, creates: int) -> dict[str, Any]:
    rpm = asana_conn.requests_per_minute or 1
    # A create is one POST (section placement rides in it); reading back the fields costs one GET.
    calls = 2 * creates
    return {
        "acumatica_auth": acu_conn.get_auth_mode_display(),
        "acumatica_seats": (
            "one shared OAuth session (one API seat)"
            if acu_conn.auth_mode != "cookie"
            else f"up to {acu_conn.max_api_sessions} cookie session(s), one API seat each"
        ),
        "acumatica_parallel_requests": acu_conn.max_concurrency,
        "asana_requests_per_minute": asana_conn.requests_per_minute,
        "asana_writes_in_flight": asana_conn.max_writes_in_flight,
        "first_pass_calls": calls,
        "first_pass_minutes": round(calls / rpm, 2),
    }


def fit_report(tenant: Tenant) -> dict[str, Any]:
    """Read, plan and describe; write nothing to Acumatica or Asana."""
    acu_conn, asana_conn = tenant.acumatica, tenant.asana
    flows = list(Flow.objects.filter(tenant=tenant, kind__in=DOCUMENT_KINDS).order_by("name"))
    report: dict[str, Any] = {
        "tenant": tenant.name,
        "generated_at": timezone.now().isoformat(timespec="seconds"),
        "flows": [],
        "problems": [],
    }
    acu = acumatica_client(acu_conn)
    try:
        with acu.session_scope():
            try:
                vendors = list(acu.iter_vendors())
            except errors.ConnectorError as exc:
                vendors = []
                report["problems"].append(f"Acumatica's vendor list could not be read: {exc}")
            for flow in flows:
                report["flows"].append(_flow_report(flow, acu, asana_conn, vendors))
            report["actions"] = _actions(acu, acu_conn, flows)
    except errors.ConnectorError as exc:
        report["problems"].append(f"Acumatica could not be read: {exc}")
        report.setdefault("actions", {"offered": {}, "needed": {}, "missing": {}})
    finally:
        with contextlib.suppress(errors.ConnectorError):
            acu.close()
    report["acumatica_build"] = acu_conn.build_version
    creates = sum(f["counts"].get("create", 0) for f in report["flows"])
    report["budgets"] = _budgets(acu_conn, asana_conn, creates)
    for flow in report["flows"]:
        report["problems"].extend(f"{flow['flow']}: {p}" for p in flow["problems"])
        held = flow["counts"].get("quarantine", 0)
        if held:
            report["problems"].append(
                f"{flow['flow']}: {held} document(s) would be held back (see the reason on each)"
            )
        if flow.get("vendors_without_option"):
            report["problems"].append(
                f"{flow['flow']}: {len(flow['vendors_without_option'])} vendor(s) have no option in "
                f"{flow['vendor_field']!r}: add the options in Asana or map them in step 3"
            )
    for entity, missing in report["actions"].get("missing", {}).items():
        report["problems"].append(
            f"Acumatica does not offer {entity} action(s) {', '.join(missing)} that the flows need"
        )
    if not flows:
        report["problems"].append("no bills or purchase-orders flow is configured (step 3)")
    report["fits"] = not report["problems"]
    return report
