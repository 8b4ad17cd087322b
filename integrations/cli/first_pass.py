"""The demo's first pass: each enabled flow of the demo tenant runs once against the sandboxes, so the
first dashboard shows what works instead of "never" in red — and anything still red says why and
what to click. `connector sandbox` runs it once its servers answer (the sandboxes' state lives in that
process, so the pass must run against them, not against a throwaway copy).

Per flow kind, the flow's own `run_once` from the registry (integrations/flows/registry.py): the same
entry point the worker's schedule calls (the approvals flow, event-driven, runs its catch-up poll).
Then every connection is checked (`connector check`), so the agent's health is known.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    from integrations.flows import registry

    entry = registry.FLOWS.get(flow.kind)
    if entry is None or entry.run_once is None:
        return True, "nothing to run"
    return entry.run_once(flow, ACTOR)


def first_pass(tenant: Tenant, out) -> list[Outcome]:
    """Run every enabled flow of `tenant` once; print and return what worked and what did not."""
    from integrations.flows.checks import check_tenant

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
