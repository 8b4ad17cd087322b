# ruff: noqa: F811  (pytest fixtures imported from the harnesses)
"""Three-way reconciliation against the sandboxes: each class of difference seeded once (Acumatica and
Asana in-process, a real Simulated Sage 100 agent on loopback), found exactly, with the right totals;
each fixed through its guarded replay; the next run finds none. Alerts: one per class that appears."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import Alert, AuditEntry, ReconciliationRun, SyncRun
from integrations.flows import clients as flow_clients
from integrations.flows import reconciliation
from integrations.models import Flow, RecordLink
from integrations.sage100.client import client_for as sage_client_for
from tests.flows.inbound.harness import DEMO, OPT, F, World, world  # noqa: F401
from tests.sage100.conftest import make_connection, start_agent
from tests.sage100.flow_harness import configure

OPEN = ("Balanced", "On Hold", "Pending Approval")


@pytest.fixture
def three_way(world: World, tmp_path, monkeypatch):
    """The approvals world plus a Sage 100 agent and a purchase request flow on the same tenant; every
    open demo bill already has its task (the state after a first pass)."""
    agent = start_agent(tmp_path)
    world.rsps.add_passthru(agent.url)
    pr_flow = configure(world.tenant)
    sage = sage_client_for(make_connection(world.tenant, agent.url), sleep=lambda s: None)
    clients = flow_clients.Clients(
        world.tenant, acumatica=world.clients.acumatica, asana=world.clients.asana, sage=sage
    )
    monkeypatch.setattr(flow_clients, "clients_for", lambda tenant: clients)
    for (type_, ref), bill in list(world.acumatica.records["Bill"].items()):
        if bill.get("Status") in OPEN:
            world.bill_task(dict(bill, Type=type_, ReferenceNbr=ref))
    world.agent, world.pr_flow, world.sage = agent, pr_flow, sage
    try:
        yield world
    finally:
        agent.stop()


def request_task(w: World, name: str, amount: float, approved: bool = True) -> str:
    values = {
        F["vendor"]: "ABC Concrete",
        F["amount"]: amount,
        F["cost_code"]: OPT["cost_code"]["5000 Materials"],
    }
    gid = w.asana.add_task(DEMO["pr_project"], name, custom_fields=values, user=DEMO["users"]["bob"])
    if approved:
        w.clock.now += 1
        w.asana.ui_update_task(gid, DEMO["users"]["alice"], completed=True)
    return gid


def seed_every_class(w: World) -> dict[str, tuple[int, str]]:
    # unlinked_document: a bill entered in Acumatica that never got a task
    w.acumatica.add_bill("RIVERLUMBER", 310.25, vendor_ref="RL-1")
    # missing_document: a bill with its task, then deleted in Acumatica
    gone = w.acumatica.add_bill("HEAVYRENT", 720.00, vendor_ref="HR-9")
    w.bill_task(gone)
    with w.acumatica.lock:
        w.acumatica._remove("Bill", w.acumatica.records["Bill"][("Bill", gone["ReferenceNbr"])])
    # approved_unreleased: approved in Asana, the event never reached us
    approved = w.acumatica.add_bill("ABCCONCRETE", 1000.00, vendor_ref="AC-5")
    gid, _ = w.bill_task(approved)
    w.clock.now += 1
    w.approve(gid)
    # released_task_open: released by someone in Acumatica directly; the task still waits
    released = w.acumatica.add_bill("STEELWORKS", 455.50, vendor_ref="SW-3")
    w.bill_task(released)
    w.acumatica.update_record("Bill", ("Bill", released["ReferenceNbr"]), Status="Open")
    # pr_approved_no_po: an approved request nobody processed
    request_task(w, "Formwork plywood", 250.00)
    request_task(w, "Not approved yet", 99.00, approved=False)  # not a difference
    # po_status_mismatch: a PO created, then someone set the task's status field by hand
    from integrations.flows.purchase_requests.orders import process_purchase_request

    pr_gid = request_task(w, "Ready-mix for footings", 1500.00)
    assert process_purchase_request(w.pr_flow, pr_gid, asana=w.clients.asana, sage=w.sage).startswith("PO ")
    w.asana.ui_update_task(
        pr_gid, DEMO["users"]["carol"], custom_fields={F["sage_status"]: OPT["sage_status"]["Error"]}
    )
    return {
        "unlinked_document": (1, "310.25"),
        "missing_document": (1, "720.00"),
        "approved_unreleased": (1, "1000.00"),
        "released_task_open": (1, "455.50"),
        "pr_approved_no_po": (1, "250.00"),
        "po_status_mismatch": (1, "1500.00"),
    }


def test_each_class_is_found_exactly_fixed_by_replay_and_gone_next_run(three_way: World):
    w = three_way
    clean = reconciliation.reconcile(w.tenant)
    assert clean.status == "succeeded" and clean.skipped == []
    assert clean.difference_count == 0, [(d.difference, d.key) for d in clean.differences.all()]
    assert not Alert.objects.filter(kind=Alert.Kind.RECONCILIATION).exists()

    expected = seed_every_class(w)
    run = reconciliation.reconcile(w.tenant)
    found = {name: (v["count"], v["amount"]) for name, v in run.totals.items()}
    assert found == expected
    assert run.differences.count() == 6
    # One alert per class that appeared (each new against the clean run before).
    alerts = Alert.objects.filter(tenant=w.tenant, kind=Alert.Kind.RECONCILIATION, resolved_at__isnull=True)
    assert alerts.count() == 6 and all(a.count == 1 for a in alerts)

    # Every difference offers a preview of its fix (nothing written), then the guarded replay.
    for diff in run.differences.select_related("flow", "record_link__flow", "tenant"):
        before = len(w.acumatica.request_log)
        preview = reconciliation.preview(diff)
        assert preview.runnable, (diff.difference, preview.reason)
        assert preview.diff, diff.difference
        assert not any(m in ("PUT", "POST", "DELETE") for m, _, _ in w.acumatica.request_log[before:])
        fix_run = reconciliation.enqueue(diff, actor="olivia")  # django-q2 sync mode: runs now
        fix_run.refresh_from_db()
        assert (fix_run.trigger, fix_run.triggered_by, fix_run.status) == ("replay", "olivia", "succeeded"), (
            diff.difference,
            fix_run.message,
        )
    assert (
        AuditEntry.objects.filter(operation="reconciliation.fix", actor="olivia", status="succeeded").count()
        == 6
    )

    # The effects, in the systems themselves.
    approved_ref = next(
        d for d in run.differences.all() if d.difference == "approved_unreleased"
    ).acumatica_ref
    assert w.bill(approved_ref)["Status"] == "Open"
    unlinked = RecordLink.objects.get(
        acumatica_ref=next(
            d.acumatica_ref for d in run.differences.all() if d.difference == "unlinked_document"
        )
    )
    assert unlinked.asana_task_gid in w.asana.tasks
    assert w.sage.find_po_by_external_id(
        next(d.asana_task_gid for d in run.differences.all() if d.difference == "pr_approved_no_po")
    )
    mismatch = next(d for d in run.differences.all() if d.difference == "po_status_mismatch")
    assert w.asana.task_values(mismatch.asana_task_gid)[F["sage_status"]] == OPT["sage_status"]["PO created"]

    after = reconciliation.reconcile(w.tenant)
    assert after.difference_count == 0, [(d.difference, d.key, d.detail) for d in after.differences.all()]
    assert all(v == {"count": 0, "amount": "0.00"} for v in after.totals.values())
    assert not Alert.objects.filter(kind=Alert.Kind.RECONCILIATION, resolved_at__isnull=True).exists()
    # The trend: three runs kept.
    assert list(
        ReconciliationRun.objects.filter(tenant=w.tenant).order_by("pk").values_list("pk", flat=True)
    ) == [
        clean.pk,
        run.pk,
        after.pk,
    ]


def test_a_class_still_present_raises_no_second_alert_and_a_system_down_is_skipped(three_way: World):
    w = three_way
    w.acumatica.add_bill("RIVERLUMBER", 10.00)
    first = reconciliation.reconcile(w.tenant)
    assert first.totals["unlinked_document"] == {"count": 1, "amount": "10.00"}
    second = reconciliation.reconcile(w.tenant)
    assert second.totals["unlinked_document"]["count"] == 1
    alert = Alert.objects.get(kind=Alert.Kind.RECONCILIATION)
    assert alert.count == 1 and alert.resolved_at is None
    # The agent stops: the Sage classes are skipped (not "none"), the run is partial.
    w.sage.max_retries = 0
    w.agent.stop()
    third = reconciliation.reconcile(w.tenant)
    assert third.status == "partial", (third.skipped, third.totals)
    assert {s["difference"] for s in third.skipped} == {"pr_approved_no_po", "po_status_mismatch"}
    assert "pr_approved_no_po" not in third.totals
    assert third.totals["unlinked_document"]["count"] == 1


def test_scheduled_job_is_registered_and_runs_every_tenant(three_way: World):
    from django_q.models import Schedule

    from integrations.flows import registry as schedules
    from integrations.flows.reconciliation import tasks

    lines = schedules.ensure_all()
    assert any("reconciliation" in line for line in lines)
    assert (
        Schedule.objects.get(name=tasks.SCHEDULE_NAME).func
        == "integrations.flows.reconciliation.tasks.reconcile_all"
    )
    assert "ridgeline: succeeded, 0 difference(s)" in tasks.reconcile_all()
    assert SyncRun.objects.count() == 0  # a reconciliation writes nothing; it only reports
    assert Flow.objects.filter(tenant=w_tenant(three_way)).exists()


def w_tenant(w: World):
    return w.tenant


def test_amounts_are_decimal_sums():
    from integrations.flows.reconciliation.compare import Comparison, Found

    c = Comparison(compared={"unlinked_document"})
    c.found = [
        Found("unlinked_document", "a", Decimal("0.10")),
        Found("unlinked_document", "b", Decimal("0.20")),
    ]
    assert c.totals()["unlinked_document"] == {"count": 2, "amount": "0.30"}
