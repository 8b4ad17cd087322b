"""Asana webhook acknowledgement latency under a burst, served by gunicorn on PostgreSQL (Redis broker).

    python -m benchmarks webhook_burst [--burst-deliveries 2000] [--burst-concurrency 50]
                                       [--burst-workers 4] [--burst-duplicates 0.05]

What happens (docs/PERFORMANCE.md):
1. a throw-away PostgreSQL database is created (BENCH_POSTGRES_URL names the server's admin database,
   default postgres://postgres@127.0.0.1:5432/postgres) and migrated with the production settings
   (connector_site.settings, DEBUG off); REDIS_URL (BENCH_REDIS_URL, default redis://127.0.0.1:6379/0)
   is django-q2's broker, under a cluster name of its own whose queue is deleted at the end;
2. a tenant with an active Asana webhook registration and its secret is created;
3. gunicorn serves connector_site.wsgi with N sync workers on a free loopback port;
4. a load generator in this process (threads, one http.client connection per delivery, as Asana opens
   them) fires the burst: distinct single-event deliveries, each signed with X-Hook-Signature, plus a
   share of exact re-deliveries (Asana retries); every request is timed from connect to the last byte;
5. checks: every delivery answered 200; one InboundEvent per distinct event, queued; each
   re-delivery stored as a duplicate; exactly one task on the broker per distinct event.
Steps 2–5 run twice: with the settings' persistent connections (CONN_MAX_AGE 60 s), and with a new
database connection per request (`?conn_max_age=0` on DATABASE_URL, Django's own default).
Without a reachable PostgreSQL the benchmark says so and is skipped; without Redis it runs on
django-q2's ORM broker and says so.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
# How the web workers hold their PostgreSQL connection: the settings keep it for 60 s (CONN_MAX_AGE);
# `?conn_max_age=0` on DATABASE_URL opens one per request (Django's own default).
VARIANTS = (
    ("persistent_connections", ""),
    ("connection_per_request", "?conn_max_age=0"),
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("webhook_burst")
    group.add_argument("--burst-deliveries", type=int, default=2000, help="distinct deliveries (2000)")
    group.add_argument("--burst-concurrency", type=int, default=50, help="concurrent senders (50)")
    group.add_argument("--burst-workers", type=int, default=4, help="gunicorn sync workers (4)")
    group.add_argument(
        "--burst-duplicates", type=float, default=0.05, help="share re-delivered as duplicates (0.05)"
    )


def quick(args) -> None:
    args.burst_deliveries = min(args.burst_deliveries, 200)
    args.burst_concurrency = min(args.burst_concurrency, 10)
    args.burst_workers = min(args.burst_workers, 2)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres(admin_url: str) -> tuple[Any, str | None]:
    try:
        import psycopg

        return psycopg.connect(admin_url, autocommit=True, connect_timeout=5), None
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return None, f"{type(exc).__name__}: {exc}".strip()


def _redis_ok(url: str) -> str | None:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"


def run(args: Any) -> dict[str, Any]:
    admin_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_PG)
    admin, why = _postgres(admin_url)
    if admin is None:
        message = f"skipped: PostgreSQL not reachable at {urlsplit(admin_url).netloc} ({why})"
        print(f"  webhook_burst: {message}", flush=True)
        return {"skipped": message}
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    redis_problem = _redis_ok(redis_url)
    db_name = f"ml_bench_burst_{os.getpid()}"
    admin.execute(f'CREATE DATABASE "{db_name}"')
    gunicorn = None
    out: dict[str, Any] = {}
    try:
        database_url = _with_db(admin_url, db_name)
        env = _environment(database_url, None if redis_problem else redis_url)
        os.environ.update(env)
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        broker = "Redis broker" if not redis_problem else f"ORM broker (Redis: {redis_problem})"
        for variant, query in VARIANTS:
            hook = _registration()
            port = _free_port()
            served = {**env, "DATABASE_URL": database_url + query}
            gunicorn = _start_gunicorn(served, port, args.burst_workers)
            try:
                result = _burst(port, hook, args)
            finally:
                _stop(gunicorn)
                gunicorn = None
            result.update(_verify(hook, result.pop("_distinct"), result.pop("_duplicates")))
            result["server"] = f"gunicorn, {args.burst_workers} sync workers, PostgreSQL, {broker}"
            result["concurrency"] = args.burst_concurrency
            out[variant] = result
            print(f"  webhook_burst/{variant}: {result}", flush=True)
            _purge_queue()
    finally:
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


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _environment(database_url: str, redis_url: str | None) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "connector_site.settings",
        "ML_CONNECTOR_ENV_FILE": "",
        "ML_CONNECTOR_VAR_DIR": tempfile.mkdtemp(prefix="ml-bench-burst-"),
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + secrets.token_urlsafe(32),
        "FERNET_KEYS": "bench-" + secrets.token_urlsafe(32),
        "DATABASE_URL": database_url,
        "Q_CLUSTER_NAME": f"ml-bench-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": redis_url or "",
    }
    return env


def _registration():
    from integrations.models import AsanaWebhook, Tenant
    from sandbox.asana import DEMO

    n = Tenant.objects.count() + 1
    tenant = Tenant.objects.create(slug=f"bench-burst-{n}", name=f"Bench burst {n}")
    return AsanaWebhook.objects.create(
        tenant=tenant,
        resource_gid=DEMO["ap_project"],
        webhook_gid="1300000000009999",
        secret=secrets.token_hex(16),
        state=AsanaWebhook.State.ACTIVE,
    )


def _start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "connector_site.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        "--backlog",
        "2048",
        "--timeout",
        "60",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env={**os.environ, **env})  # noqa: S603 - fixed argv
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            # every worker imports the app at boot; give the slower ones a moment
            time.sleep(1.0)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not answer within 60 s")


def _delivery_body(n: int) -> bytes:
    from sandbox.asana import DEMO

    return json.dumps(
        {
            "events": [
                {
                    "user": {"gid": DEMO["users"]["alice"], "resource_type": "user"},
                    "created_at": f"2026-06-01T10:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z",
                    "action": "changed",
                    "resource": {"gid": str(1400000000000000 + n), "resource_type": "task"},
                    "parent": None,
                    "change": {"field": "completed", "action": "changed"},
                }
            ]
        }
    ).encode()


def _burst(port: int, hook, args) -> dict[str, Any]:
    from integrations.asana.webhooks import SIGNATURE_HEADER, sign

    path = f"/hooks/asana/{hook.target_uuid}/"
    distinct = args.burst_deliveries
    bodies = [_delivery_body(n) for n in range(distinct)]
    rng = random.Random(8)
    duplicates = [bodies[i] for i in rng.sample(range(distinct), int(distinct * args.burst_duplicates))]
    # Re-deliveries come after their original (Asana retries a delivery it saw fail).
    plan = bodies + duplicates
    signed = [(body, sign(hook.secret, body)) for body in plan]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    cursor = iter(range(len(signed)))

    def sender() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            body, signature = signed[i]
            t0 = time.perf_counter()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
                )
                resp = conn.getresponse()
                resp.read()
                conn.close()
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if resp.status != 200:
                        failures.append(f"HTTP {resp.status}")
            except OSError as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=sender) for _ in range(args.burst_concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = [v * 1000 for v in latencies]
    return {
        "deliveries": len(signed),
        "distinct_events": distinct,
        "re_deliveries": len(duplicates),
        "errors": len(failures),
        "error_examples": sorted(set(failures))[:3],
        "ack_p50_ms": round(statistics.median(ms), 1) if ms else None,
        "ack_p95_ms": round(_pct(ms, 95), 1) if ms else None,
        "ack_p99_ms": round(_pct(ms, 99), 1) if ms else None,
        "ack_max_ms": round(max(ms), 1) if ms else None,
        "wall_s": round(wall, 2),
        "deliveries_per_s": round(len(signed) / wall, 1) if wall else None,
        "_distinct": distinct,
        "_duplicates": len(duplicates),
    }


def _verify(hook, distinct: int, duplicates: int) -> dict[str, Any]:
    from django.db.models import Count

    from audit.models import InboundEvent

    rows = InboundEvent.objects.filter(endpoint_uuid=hook.target_uuid)
    by_status = dict(rows.values_list("status").annotate(n=Count("id")))
    keys = rows.filter(status=InboundEvent.Status.QUEUED).values("dedupe_key").distinct().count()
    queued_on_broker = _queue_size()
    stored_once = (
        by_status.get("queued", 0) == distinct
        and keys == distinct
        and by_status.get("duplicate", 0) == duplicates
    )
    return {
        "inbound_events_by_status": by_status,
        "stored_exactly_once": stored_once,
        "tasks_on_broker": queued_on_broker,
        "enqueued_exactly_once": queued_on_broker == distinct,
    }


def _queue_size() -> int | None:
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size()
    except Exception:  # noqa: BLE001 - report, do not fail the measurement
        return None


def _purge_queue() -> None:
    from django_q.brokers import get_broker

    try:
        broker = get_broker()
        broker.purge_queue()
        broker.delete_queue()
    except Exception:  # noqa: BLE001,S110 - best effort clean-up of our own queue
        pass
