"""Four real django-q2 workers sharing one Asana token through the Redis budget, in real time (issue 17).

    python -m benchmarks rate_workers [--workers-rpm 300] [--workers-seconds 120] [--workers 4]

1. A throw-away PostgreSQL database (BENCH_POSTGRES_URL) migrated with the production settings; Redis
   (BENCH_REDIS_URL) is django-q2's broker (a queue of this run's own) and the rate budget's store
   (integrations/base/ratelimit/redis_store.py), exactly as a multi-worker deployment runs.
2. The sandbox Asana and Acumatica in a process of their own (benchmarks/sandbox_process.py), the Asana
   one enforcing `--workers-rpm` requests per sliding minute per bearer token on the wall clock and
   answering 429 + Retry-After above it. The tenant's AsanaConnection has the same `requests_per_minute`
   and its personal access token: one token, one budget, lowered on both sides so that a run of a couple
   of minutes covers several windows.
3. One `process_document` task per bill (the push-triggered path: read the bill by key, one Asana write)
   is enqueued on Redis, then `manage.py qcluster` starts with `--workers` worker processes, which take
   the tasks concurrently and each pace on the shared budget. Nothing is simulated: time.time(), real
   sleeps, real processes.
4. Measured from the sandbox's own request times: Asana requests per minute between the first and the
   last request (the ramp of the cluster's start and the tail after the work ran out are outside it),
   the busiest 60-second window (what the limit judges), the 429s, and the tokens the sandbox kept a
   window for (1 = the workers shared one token). Checks: one task per bill in the sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks.webhook_burst import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    ROOT,
    _environment,
    _postgres,
    _purge_queue,
    _queue_size,
    _redis_ok,
    _stop,
    _with_db,
)

from .backfill import _tenant
from .sandbox_process import SandboxProcess

# The task the push receiver enqueues per document: read by key, plan, one Asana write.
PROCESS_DOCUMENT = "integrations.flows.documents.tasks.process_document"


def add_arguments(parser) -> None:
    group = parser.add_argument_group("rate_workers")
    group.add_argument("--workers-rpm", type=int, default=300, help="per-minute limit, both sides (300)")
    group.add_argument("--workers-seconds", type=int, default=150, help="length of the paced run (150 s)")
    group.add_argument("--workers", type=int, default=4, help="qcluster worker processes (4)")


def quick(args) -> None:
    args.workers_seconds = min(args.workers_seconds, 20)


def _clear_budget(redis_url: str) -> None:
    """Start from a fresh budget: the sandbox's demo token is the same every run (its keys expire in an
    hour, and a previous run's pace must not carry over)."""
    import redis

    from integrations.base.ratelimit import fingerprint
    from integrations.base.ratelimit.redis_store import state_key_for
    from sandbox import asana as asana_sim

    key = state_key_for(f"asana:{fingerprint(asana_sim.DEMO['pat'])}")
    redis.Redis.from_url(redis_url).delete(key, *(key + s for s in (":leases", ":writes", ":holders")))


def _gaps(stamps: list[float], rpm: int) -> dict[str, Any]:
    """Where the pace was not used: the time between requests beyond the budget's interval."""
    from integrations.base.ratelimit import SAFETY

    interval = 60.0 / (rpm * SAFETY)
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    if not gaps:
        return {}
    return {
        "pace_interval_s": round(interval, 4),
        "median_gap_s": round(sorted(gaps)[len(gaps) // 2], 4),
        "longest_gap_s": round(max(gaps), 3),
        "gaps_over_2_intervals": sum(1 for g in gaps if g > 2 * interval),
        "time_beyond_pace_s": round(sum(max(0.0, g - interval) for g in gaps), 1),
    }


def run(args: Any) -> dict[str, Any]:
    admin_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
    admin, why = _postgres(admin_url)
    if admin is None:
        message = f"skipped: PostgreSQL not reachable at {urlsplit(admin_url).netloc} ({why})"
        print(f"  rate_workers: {message}", flush=True)
        return {"skipped": message}
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    problem = _redis_ok(redis_url)
    if problem:
        admin.close()
        message = f"skipped: Redis not reachable ({problem}): the shared budget needs it"
        print(f"  rate_workers: {message}", flush=True)
        return {"skipped": message}
    rpm, seconds, workers = args.workers_rpm, args.workers_seconds, args.workers
    bills = max(int(rpm * seconds / 60), 10)
    db_name = f"ml_bench_workers_{os.getpid()}"
    admin.execute(f'CREATE DATABASE "{db_name}"')
    sandbox = cluster = None
    out: dict[str, Any] = {"workers": workers, "budget_per_minute": rpm, "bills": bills}
    try:
        env = _environment(_with_db(admin_url, db_name), redis_url)
        env["Q_WORKERS"] = str(workers)
        env["Q_TIMEOUT"] = str(max(600, 4 * seconds))
        env["Q_RETRY"] = str(max(600, 4 * seconds) + 60)
        env["ALLOW_LOOPBACK_HTTP"] = "true"  # the sandboxes are served on loopback
        env["LOG_LEVEL"] = os.environ.get("BENCH_LOG_LEVEL", "WARNING")
        os.environ.update(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        from django_q.tasks import async_task

        sandbox = SandboxProcess.start(bills=bills, asana_rpm=rpm)
        flow = _tenant(sandbox.urls, rpm, slug="bench-workers")
        _purge_queue()
        _clear_budget(redis_url)
        for i in range(bills):
            async_task(PROCESS_DOCUMENT, flow.pk, "Bill", f"B{i:07d}", task_name=f"bench-{i}")
        out["queued"] = _queue_size()
        sandbox.forget()
        started = time.perf_counter()
        cluster = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "manage.py", "qcluster"], cwd=str(ROOT), env={**os.environ, **env}
        )
        deadline = started + seconds * 3 + 60
        stats = sandbox.stats()
        while time.perf_counter() < deadline and stats["asana_tasks"] < bills:
            if cluster.poll() is not None:
                raise RuntimeError(f"qcluster exited with {cluster.returncode}")
            time.sleep(1.0)
            stats = sandbox.stats()
        out["wall_s"] = round(time.perf_counter() - started, 1)
        time.sleep(1.0)  # any request still in flight is in the next count
        stats = sandbox.stats()
        out.update(_gaps(sandbox.stamps(), rpm))
    finally:
        if cluster is not None:
            _stop(cluster)
        if sandbox is not None:
            sandbox.stop()
        try:
            _purge_queue()
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001,S110 - Django may not be set up yet
            pass
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
    requests = stats["asana_requests"]
    span = (stats["asana_last_request_at"] or 0) - (stats["asana_first_request_at"] or 0)
    per_minute = (requests - 1) / (span / 60) if span > 0 else 0.0
    out.update(
        {
            "asana_tasks_created": stats["asana_tasks"],
            "every_bill_one_task": stats["asana_tasks"] == bills,
            "asana_requests": requests,
            "asana_writes": stats["asana_writes"],
            "asana_reads": stats["asana_reads"],
            "asana_429s": stats["asana_429s"],
            "tokens_limited_by_sandbox": stats["asana_limited_tokens"],
            "paced_span_s": round(span, 1),
            "asana_requests_per_minute": round(per_minute, 1),
            "busiest_60s_window": stats["asana_busiest_60s_window"],
            "rate_vs_budget_pct": round(100 * per_minute / rpm, 1),
            "busiest_60s_vs_budget_pct": round(100 * stats["asana_busiest_60s_window"] / rpm, 1),
            "acumatica_requests": stats["acumatica_requests"],
        }
    )
    print(f"  rate_workers: {out}", flush=True)
    return out
