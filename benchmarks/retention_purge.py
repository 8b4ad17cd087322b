"""The retention purge on a database holding 1M audit rows, with requests served during it (issue 17).

    python -m benchmarks retention_purge [--purge-rows 1000000] [--purge-batch 500] [--purge-pause 0.05]
                                         [--purge-share 0.25]

1. A throw-away PostgreSQL database (BENCH_POSTGRES_URL) migrated with the production settings.
2. Seeded with bulk inserts (INSERT … SELECT over generate_series, one statement per group) with a mix
   of rows sized like production's — for --purge-rows N:
      45 % AuditEntry: 30 % no-op entries aged 400–800 days (expired: 1 year), 5 % effects of the same
           age (kept: 7 years), 10 % recent (kept);
      35 % ApiCall: 30 % aged 100–800 days (expired: 90 days), 5 % recent;
      20 % InboundEvent: 8 % acted on, aged 100–300 days (body expired, row kept), 8 % ignored or
           duplicate aged 400–800 days (expired: 1 year), 4 % recent;
   then VACUUM ANALYZE (what autovacuum would have done to a table that old).
3. gunicorn (connector_site.wsgi, 2 sync workers) serves the product; a client in a process of its own
   sends, one after the other, a signed delivery to the Asana hook (an INSERT into the table being
   purged) and a GET of /healthz (the work checks read the inbound events), timing each request.
4. The client runs --purge-baseline seconds before the purge (the latencies without it), then
   `audit.retention.purge_expired()` runs in this process, then the client stops.
Reported: purge duration and rows/s (deleted + bodies cleared), table sizes (pg_total_relation_size)
before, right after the purge and after a plain VACUUM (the space a DELETE frees is reused, not given
back to the OS), the rows left per kind (checks: expired rows gone, kept rows all there), and the
latency of the concurrent requests before and during the purge: p50, p99, max, count over 100 ms.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.webhook_burst import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    ROOT,
    _environment,
    _free_port,
    _postgres,
    _redis_ok,
    _registration,
    _start_gunicorn,
    _stop,
    _with_db,
)

TABLES = ("audit_auditentry", "audit_apicall", "audit_inboundevent")
SLOW_MS = 100.0


def add_arguments(parser) -> None:
    group = parser.add_argument_group("retention_purge")
    group.add_argument("--purge-rows", type=int, default=1_000_000, help="audit rows seeded (1,000,000)")
    group.add_argument("--purge-batch", type=int, default=500, help="primary keys per batch (500)")
    group.add_argument("--purge-pause", type=float, default=0.05, help="least rest between batches (0.05 s)")
    group.add_argument(
        "--purge-share", type=float, default=0.25, help="most of the time the purge may be busy (0.25)"
    )
    group.add_argument("--purge-baseline", type=float, default=15.0, help="client alone first (15 s)")


def quick(args) -> None:
    args.purge_rows = min(args.purge_rows, 20_000)
    args.purge_baseline = min(args.purge_baseline, 3.0)


# ---- seeding ------------------------------------------------------------------------------------------
def _groups(n: int) -> list[tuple[str, int, str]]:
    """(label, rows, SQL with %(n)s rows, %(tenant)s) for the mix described above."""
    payload = json.dumps({"fields": {f"f{i}": "x" * 12 for i in range(8)}, "note": "seeded"})
    snapshot = json.dumps({"Amount": 1234.5, "Vendor": "ABCCONCRETE", "Description": "y" * 120})
    excerpt = "z" * 500
    body = json.dumps({"events": [{"action": "changed", "resource": {"gid": "1" * 16}, "pad": "p" * 500}]})
    audit = (
        "INSERT INTO audit_auditentry (tenant_id, created_at, operation, status, record_key,"
        " idempotency_key, source_snapshot, payload, field_diff, error, error_class, attempts, actor)"
        " SELECT %(tenant)s, now() - make_interval(secs => {lo} * 86400 + (g %% ({span} * 86400))),"
        " 'documents.sync', {status}, 'Bill/B' || g, '', '{snapshot}'::jsonb, '{payload}'::jsonb,"
        " '{{}}'::jsonb, '', '', 1, 'system' FROM generate_series(1, %(n)s) g"
    )
    api = (
        "INSERT INTO audit_apicall (tenant_id, system, method, url, status_code, duration_ms, attempt, error,"
        " request_excerpt, response_excerpt, started_at)"
        " SELECT %(tenant)s, 'asana', 'POST', 'https://app.asana.com/api/1.0/tasks/' || g, 201, 120, 1, '',"
        " '{excerpt}', '{excerpt}', now() - make_interval(secs => {lo} * 86400 + (g %% ({span} * 86400)))"
        " FROM generate_series(1, %(n)s) g"
    )
    inbound = (
        "INSERT INTO audit_inboundevent (tenant_id, source, received_at, headers, raw_body, signature,"
        " dedupe_key, status, status_reason, processed_at)"
        " SELECT %(tenant)s, 'asana', now() - make_interval(secs => {lo} * 86400 + (g %% ({span} * 86400))),"
        ' \'{{"X-Hook-Signature": "redacted", "Content-Type": "application/json"}}\'::jsonb,'
        " convert_to('{body}', 'UTF8'), 'valid', '{label}-' || g, {status}, '', now()"
        " FROM generate_series(1, %(n)s) g"
    )

    noise = "CASE WHEN g %% 2 = 0 THEN 'ignored' ELSE 'duplicate' END"
    # (label, share of n, template, days old from, days spread, status, inbound label)
    mix = (
        ("audit_no_op_expired", 0.30, audit, 400, 400, "'unchanged'", ""),
        ("audit_effect_old_kept", 0.05, audit, 400, 400, "'succeeded'", ""),
        ("audit_no_op_recent", 0.05, audit, 0, 30, "'unchanged'", ""),
        ("audit_effect_recent", 0.05, audit, 0, 30, "'succeeded'", ""),
        ("api_call_expired", 0.30, api, 100, 700, "", ""),
        ("api_call_recent", 0.05, api, 0, 30, "", ""),
        ("inbound_acted_body_expired", 0.08, inbound, 100, 200, "'processed'", "acted"),
        ("inbound_noise_expired", 0.08, inbound, 400, 400, noise, "noise"),
        ("inbound_recent", 0.04, inbound, 0, 30, "'processed'", "recent"),
    )
    values = {"snapshot": snapshot, "payload": payload, "excerpt": excerpt, "body": body}
    return [
        (label, int(n * share), sql.format(lo=lo, span=span, status=status, label=tag, **values))
        for label, share, sql, lo, span, status, tag in mix
    ]


def _sizes(cursor) -> dict[str, int]:
    out = {}
    for table in TABLES:
        cursor.execute("SELECT pg_total_relation_size(%s)", [table])
        out[table] = cursor.fetchone()[0]
    out["total"] = sum(out.values())
    return out


def _mb(sizes: dict[str, int]) -> dict[str, float]:
    return {k: round(v / 2**20, 1) for k, v in sizes.items()}


def _counts(cursor) -> dict[str, int]:
    old_audit = "FROM audit_auditentry WHERE created_at < now() - interval '365 days' AND status ="
    inbound = "FROM audit_inboundevent WHERE dedupe_key LIKE"
    recent = "now() - interval '31 days'"
    queries = {
        "audit_no_op_old": f"SELECT count(*) {old_audit} 'unchanged'",
        "audit_effect_old": f"SELECT count(*) {old_audit} 'succeeded'",
        "audit_recent": f"SELECT count(*) FROM audit_auditentry WHERE created_at >= {recent}",
        "api_call_old": "SELECT count(*) FROM audit_apicall WHERE started_at < now() - interval '90 days'",
        "api_call_recent": f"SELECT count(*) FROM audit_apicall WHERE started_at >= {recent}",
        "inbound_acted_old_with_body": f"SELECT count(*) {inbound} 'acted-%%' AND length(raw_body) > 0",
        "inbound_acted_old_rows": f"SELECT count(*) {inbound} 'acted-%%'",
        "inbound_noise_old": f"SELECT count(*) {inbound} 'noise-%%'",
        "inbound_recent": f"SELECT count(*) {inbound} 'recent-%%'",
    }
    out = {}
    for name, sql in queries.items():
        cursor.execute(sql)
        out[name] = cursor.fetchone()[0]
    return out


REFILLED = ("audit_no_op_expired", "api_call_expired", "inbound_noise_expired")


class _LockSampler:
    """Every 50 ms, the lock requests waiting (not granted) in the benchmark's database: whether the
    purge's transactions ever made anyone wait."""

    def __init__(self, url: str):
        import threading

        self.samples = 0
        self.with_waits = 0
        self.max_waiting = 0
        self._stop = threading.Event()
        self._conn = _postgres(url)[0]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sql = (
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE NOT l.granted AND a.datname = current_database()"
        )
        while not self._stop.wait(0.05):
            waiting = self._conn.execute(sql).fetchone()[0]
            self.samples += 1
            self.with_waits += 1 if waiting else 0
            self.max_waiting = max(self.max_waiting, waiting)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        self._conn.close()
        return {
            "samples": self.samples,
            "samples_with_a_wait": self.with_waits,
            "max_waiting": self.max_waiting,
        }


# ---- the concurrent client (its own process: the purge's CPU must not stall its clock) -----------------
def client_main(argv: list[str]) -> int:
    """python -m benchmarks.retention_purge <port> <hook path> <secret> <out file> <stop file>"""
    import hashlib
    import hmac

    from benchmarks.ingest import delivery_body

    port, path, secret, out_file, stop_file = int(argv[0]), argv[1], argv[2].encode(), argv[3], argv[4]
    samples: list[tuple[float, str, int, float]] = []
    n = 0
    while not os.path.exists(stop_file):
        n += 1
        body = delivery_body(5_000_000 + n)
        signature = hmac.new(secret, body, hashlib.sha256).hexdigest()
        for name, method, target, payload, headers in (
            ("hook", "POST", path, body, {"Content-Type": "application/json", "X-Hook-Signature": signature}),
            ("healthz", "GET", "/healthz", None, {}),
        ):
            started = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(method, target, body=payload, headers=headers)
                status = conn.getresponse()
                status.read()
                code = status.status
                conn.close()
            except OSError:
                code = 0
            samples.append((time.time(), name, code, (time.perf_counter() - started) * 1000))
        time.sleep(0.02)
    Path(out_file).write_text(json.dumps(samples))
    return 0


def _latency(samples: list, start: float, end: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("hook", "healthz"):
        ms = sorted(s[3] for s in samples if s[1] == name and start <= s[0] <= end)
        codes = sorted({s[2] for s in samples if s[1] == name and start <= s[0] <= end})
        if not ms:
            out[name] = {"requests": 0}
            continue
        out[name] = {
            "requests": len(ms),
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
            "max_ms": round(ms[-1], 1),
            f"over_{int(SLOW_MS)}ms": sum(1 for v in ms if v > SLOW_MS),
            "statuses": codes,
            # when the slow ones came (seconds after the window opened) and how slow, to tell a
            # stall of the purge's own batches from one of the machine
            "slow_at_s": [
                [round(s[0] - start, 1), round(s[3])]
                for s in samples
                if s[1] == name and start <= s[0] <= end and s[3] > SLOW_MS
            ],
        }
    return out


# ---- the run -------------------------------------------------------------------------------------------
def run(args: Any) -> dict[str, Any]:
    admin_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
    admin, why = _postgres(admin_url)
    if admin is None:
        message = f"skipped: PostgreSQL not reachable at {urlsplit(admin_url).netloc} ({why})"
        print(f"  retention_purge: {message}", flush=True)
        return {"skipped": message}
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    db_name = f"ml_bench_purge_{os.getpid()}"
    admin.execute(f'CREATE DATABASE "{db_name}"')
    gunicorn = client = None
    scratch = Path(tempfile.mkdtemp(prefix="ml-bench-purge-"))
    out: dict[str, Any] = {"rows_seeded_target": args.purge_rows, "batch_size": args.purge_batch}
    try:
        env = _environment(_with_db(admin_url, db_name), None if _redis_ok(redis_url) else redis_url)
        os.environ.update(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        from django.db import connection

        from audit.retention import purge_expired

        hook = _registration()
        seeded: dict[str, int] = {}
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            for label, rows, sql in _groups(args.purge_rows):
                cursor.execute(sql, {"n": rows, "tenant": hook.tenant_id})
                seeded[label] = rows
        out["seed_s"] = round(time.perf_counter() - t0, 1)
        out["rows_seeded"] = sum(seeded.values())
        out["seeded"] = seeded
        connection.close()
        admin_db = _postgres(_with_db(admin_url, db_name))[0]
        admin_db.execute("VACUUM ANALYZE")
        with connection.cursor() as cursor:
            out["size_before_mb"] = _mb(_sizes(cursor))
            cursor.execute("SELECT pg_database_size(current_database())")
            out["database_size_before_mb"] = round(cursor.fetchone()[0] / 2**20, 1)
            before_counts = _counts(cursor)
        out["rows_before"] = before_counts
        connection.close()

        port = _free_port()
        # healthz answers 503 here (no cluster runs): no ERROR line per request
        gunicorn = _start_gunicorn({**env, "LOG_LEVEL": "CRITICAL"}, port, 2)
        samples_file, stop_file = scratch / "samples.json", scratch / "stop"
        client = subprocess.Popen(  # noqa: S603 - our own module
            [
                sys.executable,
                "-m",
                "benchmarks.retention_purge",
                str(port),
                f"/hooks/asana/{hook.target_uuid}/",
                hook.secret,
                str(samples_file),
                str(stop_file),
            ],
            cwd=str(ROOT),
            env={**os.environ, **env},
        )
        baseline_start = time.time()
        time.sleep(args.purge_baseline)
        locks = _LockSampler(_with_db(admin_url, db_name))
        import audit.retention as retention

        rested, rest = [0.0], retention._rest

        def counted_rest(seconds: float) -> None:
            rested[0] += seconds
            rest(seconds)

        retention._rest = counted_rest  # the purge's own rests, summed (this process only)
        purge_start = time.time()
        cpu = time.process_time()
        line = purge_expired(
            batch_size=args.purge_batch, max_batches=10**6, pause=args.purge_pause, share=args.purge_share
        )
        cpu = time.process_time() - cpu
        purge_end = time.time()
        out["lock_waits_during_purge"] = locks.stop()
        time.sleep(1.0)
        stop_file.write_text("stop")
        client.wait(timeout=60)
        client = None
        samples = json.loads(samples_file.read_text())
        duration = purge_end - purge_start

        with connection.cursor() as cursor:
            after_counts = _counts(cursor)
            out["size_after_purge_mb"] = _mb(_sizes(cursor))
        connection.close()
        admin_db.execute("VACUUM ANALYZE")
        with connection.cursor() as cursor:
            out["size_after_vacuum_mb"] = _mb(_sizes(cursor))
            cursor.execute("SELECT pg_database_size(current_database())")
            out["database_size_after_vacuum_mb"] = round(cursor.fetchone()[0] / 2**20, 1)
            # A year later: as many rows arrive again as the purge removed. Bounded = they fit in the
            # space the purge freed (VACUUM made it reusable) instead of growing the tables.
            refill = [g for g in _groups(args.purge_rows) if g[0] in REFILLED]
            for _label, rows, sql in refill:
                cursor.execute(sql, {"n": rows, "tenant": hook.tenant_id})
            out["rows_refilled"] = sum(rows for _label, rows, _sql in refill)
        connection.close()
        admin_db.execute("VACUUM ANALYZE")
        with connection.cursor() as cursor:
            out["size_after_refill_mb"] = _mb(_sizes(cursor))
        connection.close()
        admin_db.close()
        deleted = (
            (before_counts["audit_no_op_old"] - after_counts["audit_no_op_old"])
            + (before_counts["api_call_old"] - after_counts["api_call_old"])
            + (before_counts["inbound_noise_old"] - after_counts["inbound_noise_old"])
        )
        cleared = before_counts["inbound_acted_old_with_body"] - after_counts["inbound_acted_old_with_body"]
        out.update(
            {
                "purge_result": line,
                "purge_s": round(duration, 1),
                "purge_pauses_s": round(rested[0], 1),
                "purge_cpu_s_this_process": round(cpu, 1),
                "rows_deleted": deleted,
                "bodies_cleared": cleared,
                "rows_per_s": round((deleted + cleared) / duration),
                "rows_after": after_counts,
                "expired_gone": after_counts["audit_no_op_old"] == 0
                and after_counts["api_call_old"] == 0
                and after_counts["inbound_noise_old"] == 0
                and after_counts["inbound_acted_old_with_body"] == 0,
                "kept_intact": all(
                    after_counts[k] == before_counts[k]
                    for k in (
                        "audit_effect_old",
                        "api_call_recent",
                        "inbound_acted_old_rows",
                        "inbound_recent",
                    )
                )
                and after_counts["audit_recent"] >= before_counts["audit_recent"],
                "latency_before_purge": _latency(samples, baseline_start, purge_start),
                "latency_during_purge": _latency(samples, purge_start, purge_end),
            }
        )
        print(f"  retention_purge: {json.dumps(out)}", flush=True)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        if gunicorn is not None:
            _stop(gunicorn)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001,S110 - Django may not be set up yet
            pass
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
    return out


if __name__ == "__main__":
    sys.exit(client_main(sys.argv[1:]))
