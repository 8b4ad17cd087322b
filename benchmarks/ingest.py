"""Webhook ingest: the product's Asana hook against a plain WSGI reference doing the same job (issue 17).

    python -m benchmarks ingest [--ingest-seconds 15] [--ingest-rounds 3] [--ingest-workers 4]
                                [--ingest-connections 50]

1. A throw-away PostgreSQL database (BENCH_POSTGRES_URL names the server's admin database) is migrated
   with the production settings; Redis (BENCH_REDIS_URL) is django-q2's broker and the cache.
2. Two servers run side by side under gunicorn with the same number of sync workers: the product
   (connector_site.wsgi, an active Asana webhook registration) and the reference
   (benchmarks/ingest_reference.py: HMAC check, one INSERT … RETURNING, one LPUSH).
3. Debian's `wrk` (a C load generator in its own process, not Python threads) drives each in turn,
   alternately for N rounds, with 50 connections and a Lua script that sends every delivery once:
   distinct single-event bodies, each pre-signed with X-Hook-Signature.
4. Per round: throughput, p50/p99 from wrk, CPU per delivery of the server's processes (gunicorn
   master + workers) and of the PostgreSQL backends serving the database (from /proc), and the
   whole Redis server's CPU (shared with whatever else uses it).
5. Checks: every delivery answered 200; each stored exactly once (rows = distinct dedupe keys, no
   duplicates) and enqueued exactly once (broker list length = rows), and at least as many rows as
   answered deliveries (at most one in flight per connection when wrk stops).
Prints the product/reference throughput ratio and p99s. Linux only (/proc); needs `wrk` on PATH.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
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
    _purge_queue,
    _queue_size,
    _redis_ok,
    _registration,
    _stop,
    _with_db,
)

WRK_THREADS = 2
CHUNK = 4000  # bodies per Lua function (LuaJIT caps the constants of one function)
ASSUMED_MAX_RATE = 2500  # deliveries/s; the pool holds 2x this for the run's duration


def add_arguments(parser) -> None:
    group = parser.add_argument_group("ingest")
    group.add_argument("--ingest-seconds", type=float, default=15.0, help="load per run (15 s)")
    group.add_argument("--ingest-rounds", type=int, default=3, help="alternating rounds (3)")
    group.add_argument("--ingest-workers", type=int, default=4, help="gunicorn sync workers (4)")
    group.add_argument("--ingest-connections", type=int, default=50, help="wrk connections (50)")


def quick(args) -> None:
    args.ingest_seconds = min(args.ingest_seconds, 5.0)
    args.ingest_rounds = max(3, min(args.ingest_rounds, 3))


# ---- the load ---------------------------------------------------------------------------------------


def delivery_body(n: int) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "user": {"gid": "1200000000000101", "resource_type": "user"},
                    "created_at": f"2026-06-01T10:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z",
                    "action": "changed",
                    "resource": {"gid": str(1400000000000000 + n), "resource_type": "task"},
                    "parent": None,
                    "change": {"field": "completed", "action": "changed"},
                }
            ]
        },
        separators=(",", ":"),
    ).encode()


# wrk calls done() once at the end: one JSON line with the counts and the latency percentiles (µs).
DONE = r"""
function done(s, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    s.requests, s.duration, s.errors.status, s.errors.connect, s.errors.read, s.errors.write,
    s.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def lua_script(path: str, secret: str, first: int, count: int, directory: Path) -> Path:
    """A wrk script sending deliveries first..first+count once each, split across wrk's threads."""
    import hmac

    chunks: list[str] = []
    for start in range(first, first + count, CHUNK):
        items = []
        for n in range(start, min(start + CHUNK, first + count)):
            body = delivery_body(n)
            sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            items.append(f'{{[==[{body.decode()}]==],"{sig}"}}')
        joined = ",\n".join(items)
        chunks.append(f"local function c{len(chunks)}() return {{{joined}}} end\n")
    loaders = "".join(f"for _, d in ipairs(c{i}()) do pool[#pool + 1] = d end\n" for i in range(len(chunks)))
    script = (
        "".join(chunks)
        + "pool = {}\n"
        + loaders
        + f'local path = "{path}"\n'
        + "local ids = 0\n"
        + "function setup(thread) thread:set('tid', ids); ids = ids + 1 end\n"
        + f"function init(args) idx = tonumber(tid) + 1; step = {WRK_THREADS} end\n"
        + "function request()\n"
        + "  local d = pool[idx]\n"
        + "  if d == nil then return wrk.format('GET', '/pool-exhausted') end\n"
        + "  idx = idx + step\n"
        + "  return wrk.format('POST', path, {['Content-Type']='application/json',"
        + " ['X-Hook-Signature']=d[2]}, d[1])\n"
        + "end\n"
        + DONE
    )
    out = directory / f"ingest-{first}.lua"
    out.write_text(script)
    return out


def run_wrk(port: int, script: Path, seconds: float, connections: int) -> dict[str, Any]:
    cmd = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{connections}",
        f"-d{max(1, int(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, check=False)  # noqa: S603
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(
            f"wrk gave no result (exit {done.returncode}): {done.stdout[-400:]} {done.stderr[-400:]}"
        )
    return json.loads(line[len("WRKJSON ") :])


# ---- CPU from /proc ---------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _redis_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "redis-server":
                    return int(entry.name)
            except OSError:
                continue
    return None


class CpuMeter:
    """CPU seconds of a gunicorn server (master + workers), of the database's backends, and of Redis."""

    def __init__(self, server_pid: int, admin, db_name: str) -> None:
        self.server_pid, self.admin, self.db_name = server_pid, admin, db_name
        self.redis_pid = _redis_pid()

    def _backends(self) -> list[int]:
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.db_name,)
        ).fetchall()
        return [r[0] for r in rows]

    def sample(self) -> dict[str, dict[int, float]]:
        server = [self.server_pid, *_children(self.server_pid)]
        return {
            "server": {p: _cpu_seconds(p) for p in server},
            "database": {p: _cpu_seconds(p) for p in self._backends()},
            "redis": {p: _cpu_seconds(p) for p in ([self.redis_pid] if self.redis_pid else [])},
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict[str, float]:
        return {part: sum(after[part][p] - before[part].get(p, 0.0) for p in after[part]) for part in after}


# ---- the servers --------------------------------------------------------------------------------------


def start_server(app: str, env: dict[str, str], workers: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    cmd = [sys.executable, "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    cmd += ["--worker-class", "sync", "--backlog", "2048", "--timeout", "60", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env={**os.environ, **env})  # noqa: S603 - fixed argv
    deadline = time.monotonic() + 60
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{app} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(1.5)  # let every worker boot
            return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{app} did not listen within 60 s")


def run(args: Any) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        message = "skipped: wrk is not installed (apt-get install wrk)"
        print(f"  ingest: {message}", flush=True)
        return {"skipped": message}
    admin_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
    admin, why = _postgres(admin_url)
    if admin is None:
        message = f"skipped: PostgreSQL not reachable at {urlsplit(admin_url).netloc} ({why})"
        print(f"  ingest: {message}", flush=True)
        return {"skipped": message}
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    if (problem := _redis_ok(redis_url)) is not None:
        admin.close()
        return {"skipped": f"Redis not reachable at {redis_url}: {problem}"}
    db_name = f"ml_bench_ingest_{os.getpid()}"
    admin.execute(f'CREATE DATABASE "{db_name}"')
    servers: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="ml-bench-ingest-"))
    try:
        return _measure(args, admin, admin_url, db_name, redis_url, servers, workdir)
    finally:
        for proc in servers:
            _stop(proc)
        _purge_queue()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001,S110 - Django may not be set up yet
            pass
        admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _measure(args, admin, admin_url, db_name, redis_url, servers, workdir) -> dict[str, Any]:
    import redis

    from benchmarks.ingest_reference import SCHEMA, TABLE

    database_url = _with_db(admin_url, db_name)
    env = _environment(database_url, redis_url)
    os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    hook = _registration()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(SCHEMA)
    ref_queue = f"ml-bench-ingest-ref-{os.getpid()}"
    ref_secret = secrets.token_hex(16)
    ref_env = {
        "REF_DATABASE_URL": database_url,
        "REF_REDIS_URL": redis_url,
        "REF_SECRET": ref_secret,
        "REF_QUEUE": ref_queue,
    }
    product, product_port = start_server("connector_site.wsgi:application", env, args.ingest_workers)
    servers.append(product)
    reference, reference_port = start_server("benchmarks.ingest_reference:app", ref_env, args.ingest_workers)
    servers.append(reference)
    rds = redis.Redis.from_url(redis_url)
    targets = {
        "product": (product, product_port, f"/hooks/asana/{hook.target_uuid}/", hook.secret),
        "reference": (reference, reference_port, "/hooks/reference/", ref_secret),
    }
    pool = int(ASSUMED_MAX_RATE * args.ingest_seconds * 2)
    cursor = 0
    # Warm-up: every worker opens its connections and (product) caches the endpoint.
    for _proc, port, path, secret in targets.values():
        script = lua_script(path, secret, cursor, 2000, workdir)
        cursor += 2000
        run_wrk(port, script, 1, args.ingest_connections)
    rounds: dict[str, list[dict[str, Any]]] = {"product": [], "reference": []}
    rds.delete(ref_queue)
    for r in range(args.ingest_rounds):
        for name, (proc, port, path, secret) in targets.items():
            script = lua_script(path, secret, cursor, pool, workdir)
            cursor += pool
            meter = CpuMeter(proc.pid, admin, db_name)
            stored_before = _stored(name, hook, rds, ref_queue, TABLE)
            load_before = os.getloadavg()[0]
            before = meter.sample()
            result = run_wrk(port, script, args.ingest_seconds, args.ingest_connections)
            # The requests still in flight when wrk stopped finish (on a loaded machine that can take
            # longer than a second): counting before they did reads a row without its LPUSH yet.
            stored_after = _settled(lambda name=name: _stored(name, hook, rds, ref_queue, TABLE))
            cpu = CpuMeter.delta(before, meter.sample())
            script.unlink()
            answered = result["requests"] - result["non2xx"]
            added = {k: stored_after[k] - stored_before[k] for k in stored_after}
            per = 1000.0 / max(answered, 1)
            rounds[name].append(
                {
                    "round": r + 1,
                    "deliveries_per_s": round(result["requests"] / (result["duration_us"] / 1e6), 1),
                    "p50_ms": round(result["p50_us"] / 1000, 1),
                    "p99_ms": round(result["p99_us"] / 1000, 1),
                    "max_ms": round(result["max_us"] / 1000, 1),
                    "answered_200": answered,
                    "errors": {k: result[k] for k in ("non2xx", "connect", "read", "write", "timeout")},
                    "server_cpu_ms_per_delivery": round(cpu["server"] * per, 3),
                    "database_cpu_ms_per_delivery": round(cpu["database"] * per, 3),
                    "redis_cpu_ms_per_delivery": round(cpu["redis"] * per, 3),
                    "rows_added": added["rows"],
                    "load_average_1min": round(load_before, 2),
                    "pool_exhausted": result["requests"] >= pool,
                    "stored_once": added["rows"] == added["distinct"] and added["duplicates"] == 0,
                    "enqueued_once": added["queued"] == added["rows"],
                    "every_answer_stored": answered <= added["rows"] <= answered + args.ingest_connections,
                }
            )
            print(f"  ingest/{name} round {r + 1}: {rounds[name][-1]}", flush=True)
    rds.delete(ref_queue)
    return _summary(rounds, args)


def _settled(read, *, every: float = 0.5, timeout: float = 15.0) -> dict[str, int]:
    """The counts once two reads `every` seconds apart agree (or after `timeout`)."""
    last = read()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(every)
        now = read()
        if now == last:
            return now
        last = now
    return last


def _stored(name: str, hook, rds, ref_queue: str, table: str) -> dict[str, int]:
    from django.db import connection

    from audit.models import InboundEvent

    if name == "product":
        rows = InboundEvent.objects.filter(endpoint_uuid=hook.target_uuid)
        queued = rows.filter(status=InboundEvent.Status.QUEUED)
        return {
            "rows": queued.count(),
            "distinct": queued.values("dedupe_key").distinct().count(),
            "duplicates": rows.filter(status=InboundEvent.Status.DUPLICATE).count(),
            "queued": _queue_size() or 0,
        }
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), count(DISTINCT dedupe_key) FROM {table}")  # noqa: S608
        rows, distinct = cursor.fetchone()
    return {"rows": rows, "distinct": distinct, "duplicates": 0, "queued": rds.llen(ref_queue)}


def _summary(rounds: dict[str, list[dict[str, Any]]], args) -> dict[str, Any]:
    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in rounds[name]), 3)

    summary: dict[str, Any] = {}
    for name in rounds:
        summary[name] = {
            key: median(name, key)
            for key in (
                "deliveries_per_s",
                "p50_ms",
                "p99_ms",
                "server_cpu_ms_per_delivery",
                "database_cpu_ms_per_delivery",
                "redis_cpu_ms_per_delivery",
            )
        }
    ratio = summary["product"]["deliveries_per_s"] / max(summary["reference"]["deliveries_per_s"], 1e-9)
    checks = {
        "every_delivery_answered_200": all(
            not any(r["errors"].values()) for rs in rounds.values() for r in rs
        ),
        "stored_exactly_once": all(r["stored_once"] for rs in rounds.values() for r in rs),
        "enqueued_exactly_once": all(r["enqueued_once"] for rs in rounds.values() for r in rs),
        "every_answer_stored": all(r["every_answer_stored"] for rs in rounds.values() for r in rs),
        "pool_never_exhausted": not any(r["pool_exhausted"] for rs in rounds.values() for r in rs),
    }
    out = {
        "setup": (
            f"gunicorn {args.ingest_workers} sync workers each, PostgreSQL + Redis on loopback, "
            f"wrk -t{WRK_THREADS} -c{args.ingest_connections} -d{args.ingest_seconds:g}s, "
            f"{args.ingest_rounds} alternating rounds, medians"
        ),
        "throughput_ratio_product_to_reference": round(ratio, 3),
        "product": summary["product"],
        "reference": summary["reference"],
        "checks": checks,
        "rounds": rounds,
    }
    print(
        f"  ingest: product/reference throughput {ratio:.2f}; p99 product "
        f"{summary['product']['p99_ms']} ms, reference {summary['reference']['p99_ms']} ms; CPU/delivery "
        f"server+db product {summary['product']['server_cpu_ms_per_delivery']}+"
        f"{summary['product']['database_cpu_ms_per_delivery']} ms, reference "
        f"{summary['reference']['server_cpu_ms_per_delivery']}+"
        f"{summary['reference']['database_cpu_ms_per_delivery']} ms; checks {checks}",
        flush=True,
    )
    if not all(checks.values()):
        failed = [k for k, ok in checks.items() if not ok]
        raise AssertionError(f"ingest checks failed: {failed}")
    return out
