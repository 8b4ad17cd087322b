"""Approval → release latency through the webhook path, and webhook acknowledgement latency under a burst.

Run: `python -m benchmarks approvals [--approvals 50] [--burst 500] [--asana-delay 30]`

What is measured (in-process, SQLite test database, sandboxes mounted through `responses`):
- connector share of one approval: from the sandbox Asana POSTing the signed event to our view until the
  bill is Open in the sandbox Acumatica — view, InboundEvent, queue, worker (django-q2 sync mode), task
  re-read, guarded release with 202 polling (the sandbox answers the polls at once: poll sleeps are a
  fake clock), outcome field + comment written back. The sandboxes' own CPU time is included.
- acknowledgement latency of the view under a burst of distinct signed single-event deliveries, with the
  task put on the real ORM broker queue (not run): the view's own cost, one request at a time through
  Django's test client (the served burst is `webhook_burst`: gunicorn on PostgreSQL);
- API calls per release, from the ApiCall rows the connector writes.
End to end is modelled, not measured: Asana's delivery delay (documented "average under a minute, most
within 10 minutes", reference/asana.md §6.5) is the `--asana-delay` parameter, and Acumatica's release
time is `--release-seconds` (the 202 polling at 1 s per poll, §5.2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector_site.settings_test")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0, autoclobber=True)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("approvals")
    group.add_argument(
        "--approvals", type=int, default=50, help="approvals released through the webhook path"
    )
    group.add_argument(
        "--burst", type=int, default=500, help="webhook deliveries in the acknowledgement burst"
    )
    group.add_argument("--asana-delay", type=float, default=30.0, help="assumed Asana delivery delay, s")
    group.add_argument("--release-seconds", type=float, default=2.0, help="assumed ReleaseBill time, s")


def quick(args) -> None:
    args.approvals, args.burst = min(args.approvals, 5), min(args.burst, 50)


def run(args) -> dict:
    """Entry point of `python -m benchmarks approvals`."""
    return measure(args.approvals, args.burst, args.asana_delay, args.release_seconds)


def measure(
    approvals: int = 50, burst: int = 500, asana_delay: float = 30.0, release_seconds: float = 2.0
) -> dict:
    _setup_django()
    import json

    import pytest  # noqa: F401  (harness imports it)
    from django.test import Client

    from integrations.asana import webhooks
    from integrations.flows.common.task_events import ASANA_EVENT_TASK
    from integrations.flows.inbound import receivers, watchdog
    from integrations.models import AsanaWebhook
    from tests.flows.inbound import harness

    client = Client()
    gen = harness.world.__wrapped__(None, client, _MonkeyPatch())
    world = next(gen)
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    world.asana.deliver_pending_events()

    from benchmarks.flows import _calls, _mark

    shares = []
    since = _mark()
    for n in range(approvals):
        bill = world.acumatica.add_bill("ABCCONCRETE", 100.0 + n)
        gid, _ = world.bill_task(bill)
        world.clock.now += 1
        world.approve(gid)
        started = time.perf_counter()
        world.asana.deliver_pending_events()
        shares.append(time.perf_counter() - started)
        assert world.bill(bill["ReferenceNbr"])["Status"] == "Open"

    calls_per_release = _calls(since, approvals)
    hook = AsanaWebhook.objects.get()
    from django_q.tasks import async_task

    receivers.asana._enqueue = lambda event_id: async_task(ASANA_EVENT_TASK, event_id, sync=False)
    acks = []
    for n in range(burst):
        body = json.dumps(
            {
                "events": [
                    {
                        "user": {"gid": harness.DEMO["users"]["alice"], "resource_type": "user"},
                        "created_at": f"2026-06-01T10:00:00.{n:03d}Z",
                        "action": "changed",
                        "resource": {"gid": str(1400000000000000 + n), "resource_type": "task"},
                        "parent": None,
                        "change": {"field": "completed", "action": "changed"},
                    }
                ]
            }
        ).encode()
        started = time.perf_counter()
        response = client.post(
            f"/hooks/asana/{hook.target_uuid}/",
            data=body,
            content_type="application/json",
            headers={"X-Hook-Signature": webhooks.sign(hook.secret, body)},
        )
        acks.append(time.perf_counter() - started)
        assert response.status_code == 200
    next(gen, None)  # closes the sandboxes' responses mock
    share_p95 = _pct(shares, 95)
    return {
        "approvals": approvals,
        "connector_share_p50_ms": round(statistics.median(shares) * 1000, 1),
        "connector_share_p95_ms": round(share_p95 * 1000, 1),
        "modelled_end_to_end_p95_s": round(asana_delay + release_seconds + share_p95, 2),
        "asana_delay_s": asana_delay,
        "release_seconds": release_seconds,
        "api_calls_per_release": calls_per_release,
        "burst": burst,
        "ack_p50_ms": round(statistics.median(acks) * 1000, 2),
        "ack_p99_ms": round(_pct(acks, 99) * 1000, 2),
        "ack_max_ms": round(max(acks) * 1000, 2),
    }


class _MonkeyPatch:
    def setattr(self, target, name, value):
        setattr(target, name, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args)
    for key, value in results.items():
        print(f"{key:28} {value}")
    ok = results["connector_share_p95_ms"] < 1000 and results["modelled_end_to_end_p95_s"] < 60
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
