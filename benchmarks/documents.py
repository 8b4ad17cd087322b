"""Bills → Asana tasks: API calls per record, connector CPU per record, peak memory over a backfill,
and the achieved Asana write rate against the configured budget (shared limiter, simulated clock).

    python -m benchmarks documents [--bills 20000] [--changed 100] [--json]

Method (reported in docs/PERFORMANCE.md):
- both sandboxes in-process (responses), contract checks off (they measure the validator, not us);
- calls are counted from the sandboxes' own request logs;
- CPU is time.process_time() of the pass divided by the records it processed (it includes the
  in-process sandboxes' handling and SQLite, so it is an upper bound for the connector alone);
- memory is tracemalloc's peak during the backfill; the sandboxes keep every task in memory, so the
  growth still held at the end (sandbox state, Django caches) is reported apart from the peak;
- the Asana client runs on the shared rate budget (integrations.base.ratelimit) with a simulated
  clock that only its sleeps advance: writes ÷ simulated minutes is the achieved rate.
"""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

ACU_URL = "https://erp.bench.test/AcumaticaERP"
ASANA_URL = "https://app.asana.com/api/1.0"


def add_arguments(parser) -> None:
    group = parser.add_argument_group("documents")
    group.add_argument("--bills", type=int, default=20_000, help="bills in the backfill (default 20000)")
    group.add_argument("--changed", type=int, default=100, help="bills changed after the backfill")


class SimClock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def _world(n_bills: int, clock: SimClock):
    from integrations.models import AcumaticaConnection, AsanaConnection, Flow, Tenant
    from integrations.sandbox import acumatica as acu_sim
    from integrations.sandbox import asana as asana_sim
    from mappings.models import FieldMapping

    acu = acu_sim.build_demo(ACU_URL, clock=clock.dt)
    acu.records["Bill"].clear()
    vendors = ["ABCCONCRETE", "STEELWORKS", "RIVERLUMBER", "Société Générale Ümlaut"]
    for i in range(n_bills):
        acu.add_bill(vendors[i % 4], 100.0 + i, reference_nbr=f"B{i:07d}", description=f"bench {i}")
    asana = asana_sim.build_demo(ASANA_URL, clock=clock)
    d = asana_sim.DEMO
    tenant = Tenant.objects.create(slug=f"bench-{int(time.time() * 1000)}", name="Bench")
    AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url=ACU_URL,
        client_id=acu_sim.DEMO_CLIENT_ID,
        client_secret=acu_sim.DEMO_CLIENT_SECRET,
        username=acu_sim.DEMO_USER,
        password=acu_sim.DEMO_PASSWORD,
    )
    AsanaConnection.objects.create(
        tenant=tenant,
        personal_access_token=d["pat"],
        workspace_gid=d["workspace"],
        requests_per_minute=1500,
        max_writes_in_flight=10,
    )
    flow = Flow.objects.create(
        tenant=tenant,
        name="AP bills",
        kind="acumatica_bills",
        asana_project_gid=d["ap_project"],
        erp_reference_field_gid=d["fields"]["erp_reference"],
        options={"page_size": 100},
    )
    for path, key, kind, precision in (
        ("Amount", "amount", "number", 2),
        ("DueDate", "due_date", "date", None),
        ("Vendor", "vendor", "text", None),
    ):
        FieldMapping.objects.create(
            flow=flow,
            source_path=path,
            asana_field_gid=d["fields"][key],
            cached_type=kind,
            precision=precision,
        )
    return acu, asana, flow


def _counts(acu, asana, since_acu: int, since_asana: int) -> dict[str, int]:
    acu_log = acu.request_log[since_acu:]
    asana_reqs = asana.requests[since_asana:]
    return {
        "acumatica_pages": sum(1 for m, p, _s in acu_log if m == "GET" and p.endswith("/Bill")),
        "acumatica_by_key": sum(1 for m, p, _s in acu_log if m == "GET" and "/Bill/" in p),
        "asana_writes": sum(1 for r in asana_reqs if r.method != "GET"),
        "asana_reads": sum(1 for r in asana_reqs if r.method == "GET"),
    }


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    import responses

    from integrations.acumatica.client import client_for as acu_client
    from integrations.asana.client import client_for as asana_client
    from integrations.flows.acumatica_documents import DocumentSync
    from integrations.flows.acumatica_documents_poll import poll
    from integrations.models import Flow

    clock = SimClock()
    n = args.bills
    acu, asana, flow = _world(n, clock)
    out: dict[str, Any] = {"bills": n}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        acu.mount(rsps)
        asana.mount(rsps)

        def sync() -> DocumentSync:
            f = Flow.objects.select_related("tenant").get(pk=flow.pk)
            return DocumentSync(
                f,
                acumatica=acu_client(f.tenant.acumatica, sleep=clock.sleep),
                asana=asana_client(f.tenant.asana, budget_clock=clock, sleep=clock.sleep),
                now=clock.dt,
            )

        # 1. backfill: every bill is new
        mark = (len(acu.request_log), len(asana.requests))
        sim_start = clock.now
        tracemalloc.start()
        before_mem = tracemalloc.get_traced_memory()[0]
        cpu = time.process_time()
        wall = time.perf_counter()
        result = poll(sync())
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        calls = _counts(acu, asana, *mark)
        sim_minutes = (clock.now - sim_start) / 60
        out["backfill"] = {
            **result.counts,
            **calls,
            "asana_writes_per_new_record": round(calls["asana_writes"] / n, 3),
            "acumatica_pages_per_100_records": round(calls["acumatica_pages"] / (n / 100), 3),
            "cpu_ms_per_record": round(cpu * 1000 / n, 3),
            "wall_s": round(wall, 1),
            "peak_memory_mb": round((peak - before_mem) / 2**20, 1),
            "retained_at_end_mb": round((current - before_mem) / 2**20, 1),
            "simulated_minutes": round(sim_minutes, 2),
            "asana_writes_per_minute": round(calls["asana_writes"] / sim_minutes, 1) if sim_minutes else None,
            "asana_requests_per_minute": round(
                (calls["asana_writes"] + calls["asana_reads"]) / sim_minutes, 1
            )
            if sim_minutes
            else None,
            "budget_per_minute": 1500,
            "asana_429s": len(asana.rate_limited),
        }

        # 2. an unchanged poll (the overlap window re-reads the newest bills)
        clock.sleep(600)
        mark = (len(acu.request_log), len(asana.requests))
        cpu = time.process_time()
        result = poll(sync())
        cpu = time.process_time() - cpu
        seen = sum(result.counts.values())
        out["unchanged_poll"] = {
            **_counts(acu, asana, *mark),
            "records_seen": seen,
            "cpu_ms_per_record": round(cpu * 1000 / max(seen, 1), 3),
        }

        # 3. some bills change
        k = min(args.changed, n)
        for i in range(k):
            acu.update_record("Bill", ("Bill", f"B{i:07d}"), Amount=5000.0 + i)
        mark = (len(acu.request_log), len(asana.requests))
        cpu = time.process_time()
        result = poll(sync())
        cpu = time.process_time() - cpu
        calls = _counts(acu, asana, *mark)
        out["changed_poll"] = {
            **result.counts,
            **calls,
            "asana_writes_per_changed_record": round(calls["asana_writes"] / k, 3),
            "cpu_ms_per_record": round(cpu * 1000 / max(sum(result.counts.values()), 1), 3),
        }
    _print(out)
    return out


def _print(out: dict[str, Any]) -> None:
    print(f"documents benchmark — {out['bills']} bills")
    for section in ("backfill", "unchanged_poll", "changed_poll"):
        print(f"  {section}:")
        for key, value in out[section].items():
            print(f"    {key:<34} {value}")
