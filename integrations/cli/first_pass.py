"""The demo's first pass: each enabled flow of the demo tenant runs once against the sandboxes, so the
first dashboard shows what works instead of "never" in red — and anything still red says why and
what to click. `connector sandbox` runs it once its servers answer (the sandboxes' state lives in that
process, so the pass must run against them, not against a throwaway copy).

Per flow kind, the same entry point the worker's schedule calls:
    bills / purchase orders   tasks.documents.poll_flow (records its run)
    employees                 tasks.roster.sync_roster, report-only (records its run)
    Asana approvals           tasks.approvals.poll_approvals (event-driven: the catch-up poll)
    purchase requests         tasks.sage100.poll_purchase_requests
    Sage PO status            tasks.sage100.poll_po_status — it records no run of its own, so this
                              pass records one (succeeded or failed, with the pass's answer)
Then every connection is checked (`connector check`), so the agent's health is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from audit.models import SyncRun
from integrations.models import Flow, Tenant

ACTOR = "demo first pass"
HINTS = {
    Flow.Kind.ACUMATICA_BILLS: "are the sandboxes up (`connector sandbox`)? Then Flows → AP bills → Sync now",
    Flow.Kind.ACUMATICA_PURCHASE_ORDERS: "Flows → select the flow → Sync now",
    Flow.Kind.ACUMATICA_EMPLOYEES: "run `connector roster --tenant demo` to see the error in full",
    Flow.Kind.ASANA_APPROVALS: "Tenants → Ridgeline Builders → Register Asana webhooks",
    Flow.Kind.ASANA_PURCHASE_REQUESTS: "run `connector purchase-requests --tenant demo --dry-run`",
    Flow.Kind.SAGE100_PO_STATUS: "Tenants → select the tenant → Test connections (is the Sage agent up?)",
}


@dataclass
class Outcome:
    flow: str
    ok: bool
    detail: str
    hint: str = ""


def _run_flow(flow: Flow) -> tuple[bool, str]:
    from integrations.tasks import approvals, documents, roster, sage100

    kind = flow.kind
    if kind in (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS):
        answer = documents.poll_flow(flow.pk, SyncRun.Trigger.MANUAL, ACTOR)
        run = SyncRun.objects.filter(flow=flow).order_by("-started_at", "-pk").first()
        ok = run is not None and run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)
        return ok, answer if ok or run is None else (run.message or answer)
    if kind == Flow.Kind.ACUMATICA_EMPLOYEES:
        answer = roster.sync_roster(flow.pk, apply=False)
        run = SyncRun.objects.filter(flow=flow).order_by("-started_at", "-pk").first()
        return bool(run and run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL)), answer
    if kind == Flow.Kind.ASANA_APPROVALS:
        answer = approvals.poll_approvals(flow.tenant_id)
        return "not polled" not in answer, answer
    if kind == Flow.Kind.ASANA_PURCHASE_REQUESTS:
        return True, sage100.poll_purchase_requests(flow.pk)
    if kind == Flow.Kind.SAGE100_PO_STATUS:
        answer = sage100.poll_po_status(flow.pk, trigger=SyncRun.Trigger.MANUAL, triggered_by=ACTOR)
        return "not reachable" not in answer, answer
    return True, "nothing to run"


def first_pass(tenant: Tenant, out) -> list[Outcome]:
    """Run every enabled flow of `tenant` once; print and return what worked and what did not."""
    from integrations.cli.check import check_tenant

    outcomes: list[Outcome] = []
    for flow in tenant.flows.filter(enabled=True).order_by("name"):
        try:
            ok, detail = _run_flow(flow)
        except Exception as exc:  # noqa: BLE001 - one flow's failure is reported, the others still run
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        outcome = Outcome(flow.name, ok, str(detail)[:300], "" if ok else HINTS.get(flow.kind, ""))
        outcomes.append(outcome)
        if ok:
            out.success(f"  {flow.name}: ok — {outcome.detail}")
        else:
            out.error(f"  {flow.name}: FAILED — {outcome.detail}. What to do: {outcome.hint}")
    for system, results in check_tenant(tenant).items():
        failed = [r for r in results if not r.ok]
        line = f"  check {system}: " + (
            "ok" if not failed else "; ".join(f"{r.what}: {r.detail}" for r in failed)
        )
        (out.error if failed else out.success)(line)
    return outcomes
