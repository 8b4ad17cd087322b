"""The Asana write rate in real time, over loopback HTTP: a backfill sized to last about --rate-seconds at
the configured budget, the sandbox Asana (another process) enforcing 1,500 requests per sliding minute
on the wall clock and answering 429 above it.

    python -m benchmarks rate [--rate-seconds 120]

Unlike `backfill` (simulated clock, any size), nothing is simulated here: the shared budget paces on
time.time(), the waits are real sleeps. The achieved rate is Asana requests ÷ wall minutes of the
pass, and the busiest 60-second window is taken from the sandbox's own request times.
"""

from __future__ import annotations

import time
from typing import Any

from .backfill import BUDGET_PER_MINUTE, _tenant
from .sandbox_process import SandboxProcess


def add_arguments(parser) -> None:
    group = parser.add_argument_group("rate")
    group.add_argument("--rate-seconds", type=int, default=120, help="length of the paced run (120 s)")


def quick(args) -> None:
    args.rate_seconds = min(args.rate_seconds, 15)


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    from integrations.flows.documents.poll import poll
    from integrations.flows.documents.sync import DocumentSync
    from integrations.models import Flow

    bills = int(BUDGET_PER_MINUTE * args.rate_seconds / 60)
    sandbox = SandboxProcess.start(bills=bills, asana_rpm=BUDGET_PER_MINUTE)
    try:
        flow = _tenant(sandbox.urls)
        sandbox.forget()
        sync = DocumentSync(Flow.objects.select_related("tenant").get(pk=flow.pk))
        wall = time.perf_counter()
        result = poll(sync)
        wall = time.perf_counter() - wall
        stats = sandbox.stats()
    finally:
        sandbox.stop()
    requests = stats["asana_writes"] + stats["asana_reads"]
    per_minute = requests / (wall / 60)
    return {
        "bills": bills,
        "created": result.counts["created"],
        "asana_writes": stats["asana_writes"],
        "asana_reads": stats["asana_reads"],
        "asana_429s": stats["asana_429s"],
        "wall_s": round(wall, 1),
        "asana_requests_per_minute": round(per_minute, 1),
        "busiest_60s_window": stats["asana_busiest_60s_window"],
        "budget_per_minute": BUDGET_PER_MINUTE,
        "rate_vs_budget_pct": round(100 * per_minute / BUDGET_PER_MINUTE, 1),
    }
