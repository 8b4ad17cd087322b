"""A large backfill of bills → Asana tasks with the sandboxes in another process, over loopback HTTP:
the connector process's own CPU per record and peak RSS, API calls per record, and the Asana write rate
achieved against the configured budget with the sandbox Asana enforcing that limit (429s counted).

    python -m benchmarks backfill [--backfill-bills 100000] [--changed 100]

Method (docs/PERFORMANCE.md):
- the sandbox Acumatica (holding the bills) and Asana run in `benchmarks.sandbox_process`, served by
  waitress on ephemeral loopback ports; this process runs the real poll pass (`poll(DocumentSync)`)
  with the real clients over HTTP, on a throw-away SQLite database (the embedded default), writing every
  RecordLink, AuditEntry, ApiCall and SyncRun row as in production;
- CPU: time.process_time() of this process over the pass ÷ records (the connector, its HTTP client and
  SQLite; not the sandboxes — their CPU is reported apart from their process);
- memory: this process's RSS before the pass, sampled after every page, and its peak (ru_maxrss);
- rate: the Asana client's shared budget runs on a simulated clock that only its waits advance; the
  sandbox Asana reads the same clock (a shared memory-mapped float) for its 1,500/min sliding window, so
  a 429 there means the connector really went over the budget in that simulated minute.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from typing import Any

from .sandbox_process import SandboxProcess, SharedClock

BUDGET_PER_MINUTE = 1500


def add_arguments(parser) -> None:
    group = parser.add_argument_group("backfill")
    group.add_argument("--backfill-bills", type=int, default=100_000, help="bills (default 100000)")
    group.add_argument("--backfill-changed", type=int, default=100, help="bills changed afterwards")


def quick(args) -> None:
    args.backfill_bills = min(args.backfill_bills, 1_000)
    args.backfill_changed = min(args.backfill_changed, 20)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _tenant(urls: dict[str, str], rpm: int = BUDGET_PER_MINUTE, slug: str = "bench-backfill"):
    """A tenant on the sandboxes with one bills flow and its three mappings (also rate, rate_workers
    and attachments)."""
    from integrations.models import Flow, Tenant
    from mappings.models import FieldMapping
    from sandbox import asana as asana_sim
    from sandbox.demo import connect_sandboxes

    d = asana_sim.DEMO
    tenant = Tenant.objects.create(slug=slug, name=slug.replace("-", " ").capitalize())
    connect_sandboxes(
        tenant,
        urls["acumatica"],
        urls["asana"],
        asana={"requests_per_minute": rpm, "max_writes_in_flight": 10},
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
    return flow


def _row_counts() -> dict[str, int]:
    """Rows in the tables a pass writes (before/after a phase: the rows it added)."""
    from audit.models import ApiCall, AuditEntry, InboundEvent, SyncRun
    from integrations.models import GuardedWrite, RecordLink

    return {
        model.__name__: model.objects.count()
        for model in (RecordLink, AuditEntry, GuardedWrite, ApiCall, SyncRun, InboundEvent)
    }


def _profiler(name: str) -> Any:
    """BENCH_PROFILE=DIR: a CPU-time cProfile of each phase's pass (DIR/backfill-<phase>.prof), for
    finding where a record's CPU goes (the figures of such a run are not comparable: profiling slows)."""
    import contextlib

    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        return contextlib.nullcontext()
    import cProfile

    @contextlib.contextmanager
    def profiled():
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        try:
            yield
        finally:
            profile.disable()
            os.makedirs(folder, exist_ok=True)
            profile.dump_stats(os.path.join(folder, f"backfill-{name}.prof"))

    return profiled()


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    from django.db import connection

    from integrations.acumatica.client import client_for as acu_client
    from integrations.asana.client import client_for as asana_client
    from integrations.flows.documents.poll import poll
    from integrations.flows.documents.sync import DocumentSync
    from integrations.models import Flow

    n = args.backfill_bills
    clock = SharedClock(os.path.join(tempfile.mkdtemp(prefix="ml-bench-clock-"), "clock"), create=True)
    sandbox = SandboxProcess.start(bills=n, clock_file=clock.path, asana_rpm=BUDGET_PER_MINUTE)
    out: dict[str, Any] = {"bills": n, "sandbox_start_s": round(sandbox.started_s, 1)}
    try:
        flow = _tenant(sandbox.urls)

        def sync() -> DocumentSync:
            f = Flow.objects.select_related("tenant").get(pk=flow.pk)
            return DocumentSync(
                f,
                acumatica=acu_client(f.tenant.acumatica),
                asana=asana_client(f.tenant.asana, budget_clock=clock, sleep=clock.sleep),
            )

        def phase(name: str, records_hint: int | None = None) -> dict[str, Any]:
            sandbox.forget()
            before_sandbox = sandbox.stats()
            samples: list[float] = []
            rss_before = _rss_mb()
            sim_start = clock.now
            statements = [0]
            kinds: dict[str, int] = {}

            def count(execute, sql, params, many, context):
                statements[0] += 1
                verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
                kinds[verb] = kinds.get(verb, 0) + 1
                return execute(sql, params, many, context)

            rows_before = _row_counts()

            profile = _profiler(name)
            cpu, wall = time.process_time(), time.perf_counter()
            with connection.execute_wrapper(count), profile:
                result = poll(sync(), progress=lambda _r: samples.append(_rss_mb()))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            calls = sandbox.stats()
            seen = sum(result.counts.values())
            rows_added = {k: v - rows_before[k] for k, v in _row_counts().items() if v != rows_before[k]}
            sim_minutes = (clock.now - sim_start) / 60
            section = {
                **{k: v for k, v in result.counts.items() if v},
                "records": seen,
                "pages": result.pages,
                "acumatica_pages": calls["acumatica_pages"],
                "acumatica_by_key": calls["acumatica_by_key"],
                "acumatica_other": calls["acumatica_other"],
                "asana_writes": calls["asana_writes"],
                "asana_reads": calls["asana_reads"],
                "asana_429s": calls["asana_429s"] - before_sandbox["asana_429s"],
                "sql_statements_per_record": round(statements[0] / max(seen, 1), 2),
                # by first word (SELECT, INSERT, UPDATE, SAVEPOINT, RELEASE …), per record
                "sql_per_record_by_kind": {k: round(v / max(seen, 1), 2) for k, v in sorted(kinds.items())},
                "rows_added": rows_added,
                "rows_added_per_record": round(sum(rows_added.values()) / max(seen, 1), 2),
                "connector_cpu_s": round(cpu, 2),
                "connector_cpu_ms_per_record": round(cpu * 1000 / max(seen, 1), 3),
                "sandbox_cpu_s": round(calls["sandbox_cpu_s"] - before_sandbox["sandbox_cpu_s"], 2),
                "wall_s": round(wall, 1),
                "rss_before_mb": round(rss_before, 1),
                "rss_after_first_page_mb": round(samples[0], 1) if samples else None,
                "rss_after_last_page_mb": round(samples[-1], 1) if samples else None,
                "rss_max_sampled_mb": round(max(samples), 1) if samples else None,
                "peak_rss_mb": round(max(_peak_rss_mb(), *samples, rss_before), 1),
            }
            if calls["asana_writes"] and sim_minutes:
                section["simulated_minutes"] = round(sim_minutes, 2)
                section["asana_requests_per_minute"] = round(
                    (calls["asana_writes"] + calls["asana_reads"]) / sim_minutes, 1
                )
                section["busiest_60s_window"] = calls["asana_busiest_60s_window"]
                section["budget_per_minute"] = BUDGET_PER_MINUTE
                section["rate_vs_budget_pct"] = round(
                    100 * section["asana_requests_per_minute"] / BUDGET_PER_MINUTE, 1
                )
            print(f"  backfill/{name}: {section}", flush=True)
            return section

        out["rss_at_start_mb"] = round(_rss_mb(), 1)
        out["backfill"] = phase("backfill")
        out["backfill"]["asana_writes_per_new_record"] = round(out["backfill"]["asana_writes"] / max(n, 1), 4)
        out["unchanged_poll"] = phase("unchanged_poll")
        sandbox.change_bills(args.backfill_changed)
        out["changed_poll"] = phase("changed_poll")
        out["asana_tasks_in_sandbox"] = sandbox.stats()["asana_tasks"]
    finally:
        sandbox.stop()
    return out
