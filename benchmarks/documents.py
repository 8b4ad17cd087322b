"""Bills and purchase orders → Asana tasks, in-process: Acumatica and Asana calls per new, unchanged and
changed document, and the Asana request rate achieved against the configured budget.

    python -m benchmarks documents [--bills 2000] [--orders 2000] [--changed 100]

Method (docs/PERFORMANCE.md):
- both sandboxes in-process (responses), contract checks off (they measure the validator, not us);
- calls are counted from the sandboxes' own request logs;
- the Asana client runs on the shared rate budget (integrations.base.ratelimit, 1,500/min configured)
  with a simulated clock that only its waits advance; the sandbox Asana enforces the same 1,500/min
  sliding window on that clock, so requests ÷ simulated minutes is the achieved rate and a 429 would
  be counted;
- CPU and memory are measured by the `backfill` benchmark (sandboxes in another process), not here.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

ACU_URL = "https://erp.bench.test/AcumaticaERP"
ASANA_URL = "https://app.asana.com/api/1.0"
BUDGET_PER_MINUTE = 1500


def add_arguments(parser) -> None:
    group = parser.add_argument_group("documents")
    group.add_argument("--bills", type=int, default=2_000, help="bills in the backfill (default 2000)")
    group.add_argument("--orders", type=int, default=2_000, help="purchase orders (default 2000)")
    group.add_argument("--changed", type=int, default=100, help="documents changed after the backfill")


def quick(args) -> None:
    args.bills, args.orders, args.changed = min(args.bills, 200), min(args.orders, 200), min(args.changed, 10)


class SimClock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


KINDS = {
    # kind: (flow kind, entity, mapped source paths → demo field keys)
    "bills": (
        "acumatica_bills",
        "Bill",
        (("Amount", "amount"), ("DueDate", "due_date"), ("Vendor", "vendor")),
    ),
    "purchase_orders": (
        "acumatica_purchase_orders",
        "PurchaseOrder",
        (("OrderTotal", "amount"), ("Date", "due_date"), ("VendorID", "vendor")),
    ),
}
TYPES = {"amount": ("number", 2), "due_date": ("date", None), "vendor": ("text", None)}


def _world(kind: str, n: int, clock: SimClock):
    from integrations.models import Flow, Tenant
    from mappings.models import FieldMapping
    from sandbox import acumatica as acu_sim
    from sandbox import asana as asana_sim
    from sandbox.demo import connect_sandboxes

    flow_kind, entity, mapped = KINDS[kind]
    acu = acu_sim.build_demo(ACU_URL, clock=clock.dt)
    acu.records["Bill"].clear()
    acu.records["PurchaseOrder"].clear()
    vendors = ["ABCCONCRETE", "STEELWORKS", "RIVERLUMBER", "Société Générale Ümlaut"]
    for i in range(n):
        if entity == "Bill":
            acu.add_bill(vendors[i % 4], 100.0 + i, reference_nbr=f"B{i:07d}", description=f"bench {i}")
        else:
            acu.add_purchase_order(
                vendors[i % 4], 100.0 + i, order_nbr=f"PO{i:07d}", description=f"bench {i}"
            )
    asana = asana_sim.build_demo(ASANA_URL, clock=clock, requests_per_minute=BUDGET_PER_MINUTE)
    d = asana_sim.DEMO
    tenant = Tenant.objects.create(slug=f"bench-{kind}-{int(time.time() * 1000)}", name="Bench")
    connect_sandboxes(
        tenant,
        ACU_URL,
        ASANA_URL,
        asana={"requests_per_minute": BUDGET_PER_MINUTE, "max_writes_in_flight": 10},
    )
    flow = Flow.objects.create(
        tenant=tenant,
        name=kind,
        kind=flow_kind,
        asana_project_gid=d["ap_project"],
        erp_reference_field_gid=d["fields"]["erp_reference"],
        options={"page_size": 100},
    )
    for path, key in mapped:
        kind_, precision = TYPES[key]
        FieldMapping.objects.create(
            flow=flow,
            source_path=path,
            asana_field_gid=d["fields"][key],
            cached_type=kind_,
            precision=precision,
        )
    return acu, asana, flow, entity


def busiest_minute(stamps: list[float]) -> int:
    """The most requests in any 60-second window (what a per-minute limit is judged on)."""
    stamps = sorted(stamps)
    best, lo = 0, 0
    for hi, now in enumerate(stamps):
        while stamps[lo] <= now - 60:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def stamp_requests(asana, clock) -> list[float]:
    """Record the (simulated) time of every request the sandbox Asana answers."""
    stamps: list[float] = []
    handle = asana.handle

    def stamped(req):
        stamps.append(clock())
        return handle(req)

    asana.handle = stamped
    return stamps


def _counts(acu, asana, entity: str, since_acu: int, since_asana: int) -> dict[str, int]:
    acu_log = acu.request_log[since_acu:]
    asana_log = asana.request_log[since_asana:]
    return {
        "acumatica_pages": sum(1 for m, p, _s in acu_log if m == "GET" and p.endswith(f"/{entity}")),
        "acumatica_by_key": sum(1 for m, p, _s in acu_log if m == "GET" and f"/{entity}/" in p),
        "asana_writes": sum(1 for m, _p, s in asana_log if m != "GET" and s != 429),
        "asana_reads": sum(1 for m, _p, s in asana_log if m == "GET" and s != 429),
        "asana_429s": sum(1 for _m, _p, s in asana_log if s == 429),
    }


def _measure(kind: str, n: int, changed: int, clock: SimClock, *, budget: bool = True) -> dict[str, Any]:
    """One kind's three passes. `budget=False` (the smoke test) leaves the shared rate budget out: its
    state is shared by every process using the token, and this clock is simulated."""
    import responses

    from integrations.acumatica.client import client_for as acu_client
    from integrations.asana.client import client_for as asana_client
    from integrations.flows.documents.poll import poll
    from integrations.flows.documents.sync import DocumentSync
    from integrations.models import Flow

    clock.sleep(3600)  # the shared budget's state outlives a kind: start the next one fresh
    acu, asana, flow, entity = _world(kind, n, clock)
    stamps = stamp_requests(asana, clock)
    out: dict[str, Any] = {"documents": n}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        acu.mount(rsps)
        asana.mount(rsps)

        def sync() -> DocumentSync:
            f = Flow.objects.select_related("tenant").get(pk=flow.pk)
            return DocumentSync(
                f,
                acumatica=acu_client(f.tenant.acumatica, sleep=clock.sleep),
                asana=asana_client(f.tenant.asana, budget_clock=clock, sleep=clock.sleep)
                if budget
                else asana_client(f.tenant.asana, rate_limiter=None, sleep=clock.sleep),
                now=clock.dt,
            )

        def phase() -> tuple[dict[str, int], dict[str, int], float]:
            mark = (len(acu.request_log), len(asana.request_log))
            sim_start = clock.now
            result = poll(sync())
            return result.counts, _counts(acu, asana, entity, *mark), (clock.now - sim_start) / 60

        # 1. backfill: every document is new
        counts, calls, minutes = phase()
        busiest = busiest_minute(stamps)
        asana_requests = calls["asana_writes"] + calls["asana_reads"]
        out["new"] = {
            "created": counts["created"],
            **calls,
            "asana_writes_per_record": round(calls["asana_writes"] / n, 3),
            "acumatica_pages_per_100_records": round(calls["acumatica_pages"] / (n / 100), 3),
            "simulated_minutes": round(minutes, 2),
            "asana_requests_per_minute": round(asana_requests / minutes, 1) if minutes else None,
            "busiest_60s_window": busiest,
            "budget_per_minute": BUDGET_PER_MINUTE,
            "rate_vs_budget_pct": round(100 * asana_requests / minutes / BUDGET_PER_MINUTE, 1)
            if minutes
            else None,
        }
        # 2. an unchanged poll: the simulated backfill fits in the 5-minute overlap, so all are re-read
        clock.sleep(600)
        counts, calls, _ = phase()
        seen = sum(counts.values())
        out["unchanged"] = {
            "records_seen": seen,
            **calls,
            "asana_writes_per_record": round(calls["asana_writes"] / max(seen, 1), 3),
        }
        # 3. some documents change
        k = min(changed, n)
        for i in range(k):
            if entity == "Bill":
                acu.update_record("Bill", ("Bill", f"B{i:07d}"), Amount=5000.0 + i)
            else:
                acu.update_record("PurchaseOrder", ("Normal", f"PO{i:07d}"), OrderTotal=5000.0 + i)
        clock.sleep(600)
        counts, calls, _ = phase()
        out["changed"] = {
            "updated": counts["updated"],
            "unchanged_in_overlap": counts["unchanged"],
            **calls,
            "asana_writes_per_changed_record": round(calls["asana_writes"] / k, 3),
        }
    return out


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    out = {}
    clock = SimClock()
    if args.bills:
        out["bills"] = _measure("bills", args.bills, args.changed, clock)
    if args.orders:
        out["purchase_orders"] = _measure("purchase_orders", args.orders, args.changed, clock)
    return out
