"""What must hold when the soak has gone quiet, read from the sandboxes' own state and the console's data.

Each check returns a list of violations (sentences naming the record), so one run reports everything
it found at once, with the seed.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlsplit

from django_q.models import Schedule

from audit.models import ApiCall, AuditEntry, InboundEvent
from integrations.models import RecordLink
from tests.flows.documents.test_documents_support import D, F

from .chaos import APPROVED, Journal
from .world import BILL_STATUSES, PO_STATUSES, STATUS_OPTIONS, World

RELEASED = {"Bill": ("Open", "Closed"), "PurchaseOrder": ("Open", "Completed", "Closed")}
LINK_KIND = {"Bill": RecordLink.Kind.BILL, "PurchaseOrder": RecordLink.Kind.PURCHASE_ORDER}


def _tasks_by_key(world: World) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for gid, task in world.asana.tasks.items():
        if D["ap_project"] in task["projects"]:
            key = world.asana.task_values(gid).get(F["erp_reference"])
            out.setdefault(key or "", []).append(gid)
    return out


def _day(value) -> str | None:
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    return str(value)[:10] if value else None


def _shown(world: World, entity: str, record: dict, gid: str) -> list[str]:
    """Fields whose task value differs from the document's current value."""
    values = world.asana.task_values(gid)
    amount = record["Amount"] if entity == "Bill" else record["OrderTotal"]
    vendor = record["Vendor"] if entity == "Bill" else record["VendorID"]
    statuses = BILL_STATUSES if entity == "Bill" else PO_STATUSES
    expected = {
        "amount": (values.get(F["amount"]), Decimal(str(amount)).quantize(Decimal("0.01"))),
        "vendor": (values.get(F["vendor"]), vendor),
        "status": (values.get(F["document_status"]), STATUS_OPTIONS[statuses[record["Status"]]]),
    }
    if entity == "Bill":
        expected["due date"] = (_day(values.get(F["due_date"])), _day(record["DueDate"]))
    wrong = []
    for name, (shown, want) in expected.items():
        if name == "amount" and shown is not None:
            shown = Decimal(str(shown)).quantize(Decimal("0.01"))
        if shown != want:
            wrong.append(f"{name} shows {shown!r}, Acumatica has {want!r}")
    return wrong


def documents(world: World) -> list[str]:
    """Exactly one task per document; a document without one is visibly quarantined/failed with a
    reason; a synced task shows the document's latest values."""
    problems = []
    by_key = _tasks_by_key(world)
    for entity in ("Bill", "PurchaseOrder"):
        number_field = "ReferenceNbr" if entity == "Bill" else "OrderNbr"
        for record in world.acumatica.records[entity].values():
            key = f"{record['Type']}/{record[number_field]}"
            tasks = by_key.get(key, [])
            link = RecordLink.objects.filter(
                tenant=world.tenant,
                kind=LINK_KIND[entity],
                acumatica_type=record["Type"],
                acumatica_ref=record[number_field],
            ).first()
            if len(tasks) > 1:
                problems.append(f"{entity} {key}: {len(tasks)} Asana tasks ({', '.join(sorted(tasks))})")
                continue
            if not tasks:
                if link is None or link.state not in ("quarantined", "failed") or not link.state_reason:
                    state = f"{link.state} {link.state_reason!r}" if link else "no RecordLink"
                    problems.append(f"{entity} {key}: no task and not visibly refused ({state})")
                continue
            if link is None or link.asana_task_gid != tasks[0]:
                problems.append(
                    f"{entity} {key}: task {tasks[0]} not linked (link: {link and link.asana_task_gid})"
                )
                continue
            if link.state != "linked":
                if link.state not in ("quarantined", "failed") or not link.state_reason:
                    problems.append(f"{entity} {key}: link {link.state} {link.state_reason!r}")
                continue
            wrong = _shown(world, entity, record, tasks[0])
            if wrong:
                problems.append(f"{entity} {key}: task {tasks[0]} is stale: {'; '.join(wrong)}")
    stray = [k for k in by_key if not k]
    if stray:
        problems.append(f"{len(by_key[''])} task(s) in the AP project without an ERP reference")
    return problems


def _applied(world: World, suffix: str, status: int) -> Counter:
    """(type, number) → how many times an action was applied by the Acumatica sandbox."""
    seen: Counter = Counter()
    for req, code in world.acumatica.dispatched:
        if req.method == "POST" and req.path.endswith(suffix) and code == status:
            entity = json.loads(req.body)["entity"]
            number = (entity.get("ReferenceNbr") or entity.get("OrderNbr") or {}).get("value")
            seen[((entity.get("Type") or {}).get("value"), number)] += 1
    return seen


def releases(world: World, journal: Journal) -> list[str]:
    """Exactly one release (and at most one approval action) per approved document, none without an
    approval; an approval still standing ended released, or refused/failed with a visible reason."""
    problems = []
    counts = {
        "ReleaseBill": _applied(world, "/Bill/ReleaseBill", 202),
        "Bill Approve": _applied(world, "/Bill/Approve", 204),
        "PurchaseOrder Approve": _applied(world, "/PurchaseOrder/Approve", 204),
    }
    approved_keys = set()
    for gid in journal.approved_tasks:
        link = RecordLink.objects.filter(tenant=world.tenant, asana_task_gid=gid).first()
        if link:
            approved_keys.add((link.acumatica_type, link.acumatica_ref))
    acted = set()
    for action, seen in counts.items():
        acted |= set(seen)
        for key, n in seen.items():
            if n > 1:
                problems.append(f"{action} applied {n} times to {key}")
            if key not in approved_keys:
                problems.append(f"{action} applied to {key} which nobody approved")
    for gid in sorted(journal.approved_tasks):
        link = RecordLink.objects.filter(tenant=world.tenant, asana_task_gid=gid).first()
        if link is None:
            problems.append(f"approved task {gid}: no RecordLink")
            continue
        entity = "Bill" if link.kind == RecordLink.Kind.BILL else "PurchaseOrder"
        key = (link.acumatica_type, link.acumatica_ref)
        record = world.acumatica.record(entity, *key)
        still_approved = world.asana.task_values(gid).get(F["approval_status"]) == APPROVED
        released = record["Status"] in RELEASED[entity]
        explained = link.state_reason.startswith(("release refused", "release failed"))
        if still_approved and not released and not explained:
            problems.append(
                f"approved {entity} {key[1]} is {record['Status']!r}, link says {link.state_reason!r}"
            )
        if (
            released
            and key in acted
            and not AuditEntry.objects.filter(
                operation=f"{link.kind}.release", status="succeeded", record_key=f"{key[0]} {key[1]}"
            ).exists()
        ):
            problems.append(f"{entity} {key[1]} released without a succeeded audit entry")
    return problems


def purchase_requests(world: World, journal: Journal) -> list[str]:
    """Exactly one Sage PO per approved valid request, none otherwise; refusals visible with a reason."""
    problems = []
    linked = 0
    for gid, kind in sorted(journal.requests.items()):
        pos = world.backend.count_pos(gid)
        link = RecordLink.objects.filter(tenant=world.tenant, asana_task_gid=gid).first()
        approved = gid in journal.approved_requests
        if approved and kind == "valid":
            if pos != 1:
                problems.append(f"purchase request {gid}: {pos} Sage POs")
            if link is None or link.state != "linked" or not link.sage_po_number:
                problems.append(f"purchase request {gid}: link {link and (link.state, link.state_reason)}")
                continue
            linked += 1
            if world.asana.task_values(gid).get(F["po_number"]) != link.sage_po_number:
                problems.append(f"purchase request {gid}: task does not show PO {link.sage_po_number}")
            if not AuditEntry.objects.filter(
                record_link=link, operation="purchase_order.create", status="succeeded"
            ).exists():
                problems.append(f"purchase request {gid}: PO {link.sage_po_number} without an audit entry")
        elif approved:
            if pos:
                problems.append(f"invalid purchase request {gid}: {pos} Sage POs")
            if link is None or link.state != "quarantined" or not link.state_reason:
                problems.append(f"invalid purchase request {gid}: not quarantined ({link and link.state})")
        elif pos or (link is not None and link.state == "linked"):
            problems.append(f"unapproved purchase request {gid}: {pos} POs, link {link and link.state}")
    total = world.backend.count_pos()
    if total != linked:
        problems.append(f"Sage holds {total} POs, {linked} approved requests are linked to one")
    return problems


def _path(sim, url: str) -> str:
    path = urlsplit(url).path
    base = urlsplit(sim.base_url).path
    return path[len(base) :] if path.startswith(base) else path


def audit_trail(world: World, journal: Journal) -> list[str]:
    """Every applied vendor write has its ApiCall row (a write made by a worker that died at that moment
    may lack one); every RecordLink has audit entries; every inbound event ended with a status; no
    retry is left pending."""
    problems = []
    killed = {(name, i) for name, start, end in journal.killed_spans for i in range(start, end)}
    for name, sim in (("asana", world.asana), ("acumatica", world.acumatica)):
        applied: Counter = Counter()
        for i, (req, status) in enumerate(sim.dispatched):
            if req.method in ("POST", "PUT", "DELETE") and status < 400 and (name, i) not in killed:
                applied[(req.method, req.path)] += 1
        recorded: Counter = Counter()
        for method, url, status in ApiCall.objects.filter(system=name).values_list(
            "method", "url", "status_code"
        ):
            if method in ("POST", "PUT", "DELETE") and (status is None or status < 400):
                recorded[(method, _path(sim, url))] += 1
        for key, n in applied.items():
            if recorded[key] < n:
                problems.append(f"{name} {key[0]} {key[1]}: applied {n} times, {recorded[key]} ApiCall rows")
    for link in RecordLink.objects.filter(tenant=world.tenant):
        if not AuditEntry.objects.filter(record_link=link).exists():
            problems.append(f"RecordLink {link.pk} ({link}, {link.state}) has no audit entry")
    stuck = InboundEvent.objects.exclude(status__in=["processed", "ignored", "duplicate", "failed"])
    for event in stuck:
        problems.append(
            f"inbound event {event.pk} ({event.source}) left {event.status}: {event.status_reason!r}"
        )
    for event in InboundEvent.objects.filter(status="failed"):
        if not event.status_reason or "never finished" in event.status_reason:
            problems.append(f"inbound event {event.pk} failed: {event.status_reason!r}")
    pending = Schedule.objects.filter(schedule_type=Schedule.ONCE).exclude(repeats=0)
    for schedule in pending:
        problems.append(f"retry {schedule.name} still pending at the end")
    return problems
