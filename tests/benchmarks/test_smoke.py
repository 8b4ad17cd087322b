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
