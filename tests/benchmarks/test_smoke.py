"""The benchmarks still run: a tiny in-process documents pass, the loopback sandbox process, the report.

No timing is asserted (benchmarks measure, tests never time anything); `make benchmark` runs them for real.
"""

from __future__ import annotations

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import documents, report
from benchmarks.sandbox_process import SandboxProcess


def test_every_benchmark_parses_its_options_and_shrinks_for_quick():
    modules = {name: __import__(path, fromlist=["run"]) for name, path in bench_main.BENCHMARKS.items()}
    args = bench_main._parser(modules).parse_args(["--quick"])
    for module in modules.values():
        module.quick(args)
    assert args.backfill_bills <= 1_000 and args.burst_deliveries <= 200 and args.bills <= 200
    assert args.workers_seconds <= 20 and args.purge_rows <= 20_000


def test_busiest_minute_counts_the_fullest_sliding_window():
    assert documents.busiest_minute([]) == 0
    assert documents.busiest_minute([0, 10, 59.9, 60, 119, 200]) == 3


@pytest.mark.django_db
def test_documents_pass_counts_one_write_per_new_and_changed_bill():
    out = documents._measure("bills", 5, 2, documents.SimClock(), budget=False)
    assert out["new"]["created"] == 5 and out["new"]["asana_writes"] == 5
    assert out["new"]["asana_429s"] == 0 and out["new"]["acumatica_by_key"] == 0
    assert out["unchanged"]["asana_writes"] == 0 and out["unchanged"]["records_seen"] == 5
    assert out["changed"]["updated"] == 2 and out["changed"]["asana_writes_per_changed_record"] == 1.0


def test_sandbox_process_serves_bills_over_loopback_and_counts_requests():
    import requests

    sandbox = SandboxProcess.start(bills=3)
    try:
        base = sandbox.urls["acumatica"]
        assert base.startswith("http://127.0.0.1:")
        sandbox.change_bills(1)
        stats = sandbox.stats()
        assert stats["asana_tasks"] == 0 and stats["asana_429s"] == 0
        answer = requests.get(sandbox.urls["asana"] + "/users/me", timeout=10)
        assert answer.status_code == 401  # a real HTTP answer from the sandbox Asana in the other process
        assert sandbox.stats()["asana_requests"] == 1
    finally:
        sandbox.stop()
    assert sandbox.proc.returncode is not None


def _get_from_another_process(url: str, token: str) -> tuple[int, str]:
    """GET url with a bearer token from a separate Python process: (status, Retry-After)."""
    import subprocess
    import sys

    code = (
        "import sys, requests\n"
        "r = requests.get(sys.argv[1], headers={'Authorization': 'Bearer ' + sys.argv[2]}, timeout=10)\n"
        "print(r.status_code, r.headers.get('Retry-After', ''))\n"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code, url, token], capture_output=True, text=True, timeout=60, check=True
    )
    status, _, retry_after = out.stdout.strip().partition(" ")
    return int(status), retry_after


def test_served_sandbox_asana_limits_each_token_across_client_processes():
    """The multi-worker rate run relies on it: the served sandbox Asana counts one token's requests
    from every process against one sliding minute, answers 429 + Retry-After above it, and keeps
    another token's window apart."""
    from sandbox.asana import DEMO

    sandbox = SandboxProcess.start(asana_rpm=2)
    try:
        me = sandbox.urls["asana"] + "/users/me"
        first = _get_from_another_process(me, DEMO["pat"])
        second = _get_from_another_process(me, DEMO["pat"])
        third = _get_from_another_process(me, DEMO["pat"])
        other_token = _get_from_another_process(me, "not-the-demo-token")
        stats = sandbox.stats()
    finally:
        sandbox.stop()
    assert first[0] == 200 and second[0] == 200
    assert third[0] == 429 and 1 <= int(third[1]) <= 60
    assert other_token[0] == 401  # refused as unknown, not rate limited: its own window
    assert stats["asana_429s"] == 1 and stats["asana_limited_tokens"] == 2


def test_rate_workers_gap_analysis_finds_the_unused_pace():
    from benchmarks import rate_workers

    interval = 60.0 / (60 * 0.97)  # 60/min budget
    steady = [i * interval for i in range(10)]
    out = rate_workers._gaps(steady, 60)
    assert out["gaps_over_2_intervals"] == 0 and out["time_beyond_pace_s"] == 0.0
    stalled = [*steady, steady[-1] + 5 * interval]
    out = rate_workers._gaps(stalled, 60)
    assert out["gaps_over_2_intervals"] == 1 and out["time_beyond_pace_s"] == round(4 * interval, 1)


def test_retention_purge_latency_summary_counts_slow_requests_per_endpoint():
    from benchmarks import retention_purge

    samples = [(1.0, "hook", 200, 10.0), (2.0, "hook", 200, 150.0), (2.5, "healthz", 503, 40.0)]
    samples += [(9.0, "hook", 200, 500.0)]  # outside the window
    out = retention_purge._latency(samples, 0.0, 5.0)
    assert out["hook"]["requests"] == 2 and out["hook"]["max_ms"] == 150.0 and out["hook"]["over_100ms"] == 1
    assert out["healthz"]["over_100ms"] == 0 and out["healthz"]["statuses"] == [503]


def test_report_renders_nested_results_as_tables(tmp_path):
    document = {
        "machine": report.machine(),
        "quick": True,
        "wall_s": {"total": 1.0, "documents": 1.0},
        "results": {
            "documents": {
                "bills": {"new": {"created": 5, "asana_writes": 5, "asana_reads": 1, "pages": 1, "x": 0}}
            }
        },
    }
    md_path, json_path = report.write(document, tmp_path)
    text = md_path.read_text()
    assert "| created | 5 |" in text and "documents / bills" in text and json_path.exists()


def test_ingest_reference_stores_once_and_refuses_a_bad_signature(monkeypatch):
    """The plain WSGI reference the ingest benchmark compares against, with fake connections."""
    import hashlib
    import hmac
    import io

    from benchmarks import ingest_reference

    inserted: list[tuple] = []
    pushed: list = []

    class Db:
        def execute(self, sql, params):
            key = params[2]
            new = all(p[2] != key for p in inserted)
            inserted.append(params)
            return type("R", (), {"fetchone": lambda self: (len(inserted),) if new else None})()

    class Redis:
        def lpush(self, queue, value):
            pushed.append((queue, value))

    monkeypatch.setattr(
        ingest_reference, "_state", {"db": Db(), "redis": Redis(), "secret": b"s3", "queue": "q"}
    )

    def post(body: bytes, signature: str) -> str:
        status: list[str] = []
        environ = {
            "REQUEST_METHOD": "POST",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "HTTP_X_HOOK_SIGNATURE": signature,
        }
        ingest_reference.app(environ, lambda s, h: status.append(s))
        return status[0]

    body = b'{"events": [{"action": "changed"}]}'
    good = hmac.new(b"s3", body, hashlib.sha256).hexdigest()
    assert post(body, "0" * 64).startswith("401") and inserted == []
    assert post(body, good).startswith("200") and post(body, good).startswith("200")
    assert pushed == [("q", 1)]  # a re-delivery is stored once and enqueued once


def test_ingest_counts_only_once_the_requests_in_flight_have_landed():
    """A request still in flight when wrk stops may have stored its row but not pushed it yet; the
    checks read the counts once they stop moving."""
    from benchmarks import ingest

    reads = iter([{"rows": 5, "queued": 4}, {"rows": 6, "queued": 6}, {"rows": 6, "queued": 6}])
    assert ingest._settled(lambda: next(reads), every=0.0) == {"rows": 6, "queued": 6}
