"""API calls per record for the flows other than the bill/PO poll: Asana → Acumatica write-back, push-
triggered document sync, employee roster, purchase request → Sage 100 PO (the release after an approval
is counted by the `approvals` benchmark).

    python -m benchmarks flows [--flow-records 20]

Method (docs/PERFORMANCE.md): the test suite's harnesses — the in-process sandbox Asana and Acumatica
(strict contract checks on), a real Simulated Sage 100 agent on loopback, Asana's deliveries and
Acumatica's push notifications POSTed into the real views, django-q2 in sync mode so the worker runs
inline. Calls are counted from the ApiCall rows the connector writes for every HTTP request it sends
(so retries and token calls count), per system and per read (GET) / write (any other method).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any


def add_arguments(parser) -> None:
    group = parser.add_argument_group("flows")
    group.add_argument("--flow-records", type=int, default=20, help="records per flow (default 20)")


def quick(args) -> None:
    args.flow_records = min(args.flow_records, 3)


class _MonkeyPatch:
    def setattr(self, target, name, value=None):
        setattr(target, name, value)


def _mark() -> int:
    from audit.models import ApiCall

    return ApiCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _calls(since: int, records: int) -> dict[str, Any]:
    """ApiCall rows after `since`, per record: {system}_{reads|writes|auth}."""
    from audit.models import ApiCall

    totals: dict[str, int] = {}
    for system, method, url in ApiCall.objects.filter(pk__gt=since).values_list("system", "method", "url"):
        kind = "auth" if any(w in url for w in ("/identity/", "/auth/", "oauth_token")) else None
        kind = kind or ("reads" if method == "GET" else "writes")
        totals[f"{system}_{kind}"] = totals.get(f"{system}_{kind}", 0) + 1
    per = {f"{k}_per_record": round(v / records, 2) for k, v in sorted(totals.items())}
    return {"records": records, **per}


def _approvals_world():
    from django.test import Client

    from integrations.flows.inbound import watchdog
    from tests.flows.inbound import harness

    client = Client()
    gen = harness.world.__wrapped__(None, client, _MonkeyPatch())
    world = next(gen)
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()
    return world, gen, client


def _writeback(world, n: int) -> dict[str, Any]:
    from tests.flows.inbound.harness import DEMO, mapping

    memo = world.asana.add_custom_field("Memo", "text", projects=(DEMO["ap_project"],))
    mapping(world.approvals_flow, "Description", memo, "text", direction="to_erp")
    bills = []
    for i in range(n):
        bill = world.acumatica.add_bill("ABCCONCRETE", 300.0 + i, description="old text")
        gid, _ = world.bill_task(bill)
        bills.append((bill, gid))
    since = _mark()
    for i, (_bill, gid) in enumerate(bills):
        world.clock.now += 1
        world.asana.ui_update_task(gid, DEMO["users"]["carol"], custom_fields={memo: f"Lot {i}, phase 2"})
        world.asana.deliver_pending_events()
    written = sum(1 for bill, _g in bills if world.bill(bill["ReferenceNbr"])["Description"] != "old text")
    return {**_calls(since, n), "written_back": written}


def _push(world, n: int) -> dict[str, Any]:
    from integrations.models import AcumaticaConnection, RecordLink
    from tests.flows.inbound.harness import django_deliverer

    header, secret = "X-ML-Connector-Secret", "bench-push-secret-0001"
    conn = AcumaticaConnection.objects.get(tenant=world.tenant)
    conn.push_header_name, conn.push_secret = header, secret
    conn.save()
    from django.test import Client

    world.acumatica.deliver = django_deliverer(Client())
    world.acumatica.configure_push(f"http://testserver/hooks/acumatica/{conn.push_uuid}/", header, secret)
    refs = [world.acumatica.add_bill("STEELWORKS", 700.0 + i)["ReferenceNbr"] for i in range(n)]
    since = _mark()
    for ref in refs:  # a user edits each bill: one push each, the task is created
        world.acumatica.update_record("Bill", ("Bill", ref), Description="changed in the UI")
    new = _calls(since, n)
    since = _mark()
    for ref in refs:  # and edits it again: the task is updated
        world.acumatica.update_record("Bill", ("Bill", ref), Amount=9000.0)
    changed = _calls(since, n)
    linked = RecordLink.objects.filter(acumatica_ref__in=refs, state="linked").count()
    return {"new_bill": new, "changed_bill": changed, "linked": linked}


def _roster(world, n: int) -> dict[str, Any]:
    from integrations.flows.roster import sync as roster
    from integrations.models import Flow
    from tests.flows.inbound.harness import DEMO

    flow = Flow.objects.create(
        tenant=world.tenant,
        name="Employees",
        kind=Flow.Kind.ACUMATICA_EMPLOYEES,
        options={"team_gid": DEMO["team_finance"]},
    )
    for i in range(n):
        world.acumatica.add_employee(f"EPB{i:07d}", f"Bench Person {i}", f"bench.person{i}@ridgeline.example")
    since = _mark()
    first = roster.sync_roster(flow, clients=world.clients, apply=True)
    employees = len(first.plan.add) + len(first.plan.keep)
    added = _calls(since, max(len(first.plan.add), 1))
    since = _mark()
    again = roster.sync_roster(flow, clients=world.clients, apply=True)
    unchanged = _calls(since, max(len(again.plan.keep), 1))
    return {
        "employees_in_acumatica": employees,
        "first_pass_per_employee_added": {"added": len(first.plan.add), **added},
        "second_pass_per_employee_kept": {"kept": len(again.plan.keep), **unchanged},
    }


def _purchase_requests(n: int) -> dict[str, Any]:
    from integrations.models import Tenant
    from tests.sage100 import flow_harness

    Tenant.objects.filter(slug="ridgeline").update(slug="ridgeline-approvals")  # the harnesses share a slug
    gen = flow_harness.pr_world.__wrapped__(
        None, Path(tempfile.mkdtemp(prefix="ml-bench-pr-")), _MonkeyPatch()
    )
    world = next(gen)
    try:
        gids = [world.request_task(name=f"Bench request {i}", amount=100.0 + i) for i in range(n)]
        since = _mark()
        outcomes = [world.process(gid) for gid in gids]
        created = _calls(since, n)
        since = _mark()
        again = [world.process(gid) for gid in gids]  # re-delivered approvals: no second PO
        repeated = _calls(since, n)
        return {
            "approved_request": {
                "pos_created": sum(1 for o in outcomes if "created" in o),
                **created,
            },
            "approval_seen_again": {
                "already_ordered": sum(1 for o in again if o.startswith("already ordered")),
                **repeated,
            },
            "pos_in_sage": world.backend.count_pos(),
        }
    finally:
        next(gen, None)


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    n = args.flow_records
    out: dict[str, Any] = {}
    world, gen, _client = _approvals_world()
    try:
        out["writeback"] = _writeback(world, n)
        out["push_triggered_sync"] = _push(world, n)
        out["roster"] = _roster(world, n)
    finally:
        next(gen, None)
    out["purchase_requests"] = _purchase_requests(n)
    return out
