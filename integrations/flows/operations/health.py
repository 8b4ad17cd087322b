"""What an operator cares about, cluster-wide: is work waiting, is anyone taking it, is a run stuck?

`/healthz` (integrations/views.py) and the console dashboard (the "Cluster" panel) read the same rules:

    queue      red when the oldest queued task has waited longer than HEALTH_QUEUE_MAX_AGE_SECONDS
    workers    red when tasks wait and no worker has finished one for HEALTH_WORKER_IDLE_SECONDS
    runs       red while a sync run has been "running" past RUN_DEADLINE_SECONDS; the sweep
               (`sweep_abandoned_runs`, scheduled, and `connector health --sweep`) marks such runs
               `abandoned` with the reason — a worker killed mid-pass never finishes its run
    inbound    red when inbound events have waited past the dashboard's backlog threshold
    webhooks   red when an Asana webhook is failing, gone or scheduled for deletion

The queue is read where the broker keeps it: django-q2's ORM broker stores each task as an OrmQ row
whose `lock` is its enqueue time until a worker takes it (then a lease in the future); the Redis broker
keeps a list whose head is the oldest task, whose signed package carries `started` (its enqueue time).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Min
from django.utils import timezone

from audit.models import InboundEvent, SyncRun
from integrations.base import schedules
from integrations.flows.operations.rules import GREEN, GREY, RED, Health, _age, backlog_health, webhook_health
from integrations.models import AsanaWebhook

ABANDONED_REASON = (
    "abandoned: still 'running' {age} after it started, past the {deadline} s deadline — the worker "
    "running it stopped (killed, restarted or timed out). Run the flow again (Sync now) or replay "
    "its records."
)


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def queue_max_age() -> int:
    return _setting("HEALTH_QUEUE_MAX_AGE_SECONDS", 600)


def worker_idle() -> int:
    return _setting("HEALTH_WORKER_IDLE_SECONDS", 90)


def run_deadline() -> int:
    default = max(2 * int(settings.Q_CLUSTER.get("timeout") or 300), 1800)
    return _setting("RUN_DEADLINE_SECONDS", default)


# ---- reading the queue ----------------------------------------------------------------------------


def queue_snapshot(now: datetime) -> dict[str, Any]:
    """{waiting, oldest (enqueue time of the oldest waiting task), last_done (newest finish)}."""
    from django_q.models import Task

    out: dict[str, Any] = {"waiting": 0, "oldest": None, "last_done": None, "broker": "sync"}
    out["last_done"] = Task.objects.aggregate(m=Max("stopped"))["m"]
    if settings.Q_CLUSTER.get("sync"):
        return out
    from django_q.brokers import get_broker

    broker = get_broker()
    if settings.Q_CLUSTER.get("redis"):
        out["broker"] = "redis"
        out["waiting"] = broker.queue_size() or 0
        if out["waiting"]:
            from django_q.signing import SignedPackage

            head = broker.connection.lindex(broker.list_key, 0)
            try:
                out["oldest"] = SignedPackage.loads(head).get("started") if head else None
            except Exception:  # noqa: BLE001 - an unreadable package: age unknown, count still shown
                out["oldest"] = None
        return out
    from django_q.conf import Conf
    from django_q.models import OrmQ

    out["broker"] = "orm"
    waiting = OrmQ.objects.using(Conf.ORM).filter(key=broker.list_key, lock__lte=now)
    out["waiting"] = waiting.count()
    out["oldest"] = waiting.aggregate(oldest=Min("lock"))["oldest"]
    return out


# ---- pure rules -----------------------------------------------------------------------------------


def queue_health(waiting: int, oldest: datetime | None, now: datetime, max_age: int) -> Health:
    if not waiting:
        return Health(GREEN, "no task waiting", "", "0")
    if oldest is None:
        return Health(GREEN, f"{waiting} task(s) waiting", "", str(waiting))
    text = f"{waiting} task(s) waiting, the oldest queued {_age(now, oldest)}"
    if (now - oldest).total_seconds() > max_age:
        return Health(RED, text + f" (limit {max_age} s): workers are stuck or too few", "", str(waiting))
    return Health(GREEN, text, "", str(waiting))


def workers_health(
    waiting: int, oldest: datetime | None, last_done: datetime | None, now: datetime, idle: int
) -> Health:
    if not waiting:
        return Health(GREEN, "idle: nothing waits", "", "idle")
    waited = (now - oldest).total_seconds() if oldest else 0
    since = (now - last_done).total_seconds() if last_done else None
    if waited > idle and (since is None or since > idle):
        when = f"since {_age(now, last_done)}" if last_done else "ever"
        return Health(
            RED,
            f"no worker has finished a task {when} while {waiting} wait: is `qcluster` running and alive?",
            "",
            "stalled",
        )
    return Health(
        GREEN, f"last task finished {_age(now, last_done)}" if last_done else "taking work", "", "ok"
    )


def runs_health(stale: list[SyncRun], now: datetime, deadline: int, url: str = "") -> Health:
    if not stale:
        return Health(GREEN, "no run past its deadline", url, "0")
    oldest = min(r.started_at for r in stale)
    return Health(
        RED,
        f"{len(stale)} run(s) 'running' past the {deadline} s deadline (oldest started {_age(now, oldest)}); "
        "the sweep marks them abandoned",
        url,
        str(len(stale)),
    )


# ---- gathering ------------------------------------------------------------------------------------


def stale_runs(now: datetime, tenants=None) -> list[SyncRun]:
    qs = SyncRun.objects.filter(
        status=SyncRun.Status.RUNNING, started_at__lt=now - timedelta(seconds=run_deadline())
    )
    if tenants is not None:
        qs = qs.filter(tenant__in=tenants)
    return list(qs.select_related("tenant", "flow")[:100])


def sweep_abandoned_runs(now: datetime | None = None) -> int:
    """Mark every run 'running' past the deadline `abandoned`, with the reason. Idempotent."""
    now = now or timezone.now()
    deadline = run_deadline()
    n = 0
    for run in SyncRun.objects.filter(
        status=SyncRun.Status.RUNNING, started_at__lt=now - timedelta(seconds=deadline)
    ):
        reason = ABANDONED_REASON.format(age=_age(now, run.started_at).replace(" ago", ""), deadline=deadline)
        n += SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.RUNNING).update(
            status=SyncRun.Status.ABANDONED,
            finished_at=now,
            message=(f"{run.message}\n{reason}" if run.message else reason),
        )
    return n


SWEEP_MINUTES = 5


def ensure_schedule() -> str:
    func = "integrations.flows.operations.health.sweep_abandoned_runs"
    return schedules.ensure("health:sweep-abandoned-runs", func, minutes=SWEEP_MINUTES)


def system_health(now: datetime | None = None, *, tenants=None) -> dict[str, Health]:
    """The cluster-wide items; `tenants` (a queryset) limits runs, inbound events and webhooks to them."""
    from django.urls import reverse

    now = now or timezone.now()
    snap = queue_snapshot(now)
    items = {
        "queue": queue_health(snap["waiting"], snap["oldest"], now, queue_max_age()),
        "workers": workers_health(snap["waiting"], snap["oldest"], snap["last_done"], now, worker_idle()),
        "runs": runs_health(
            stale_runs(now, tenants),
            now,
            run_deadline(),
            reverse("admin:audit_syncrun_changelist") + "?status__exact=running",
        ),
    }
    events = InboundEvent.objects.filter(
        status__in=[InboundEvent.Status.RECEIVED, InboundEvent.Status.QUEUED]
    )
    hooks = AsanaWebhook.objects.all()
    if tenants is not None:
        events, hooks = events.filter(tenant__in=tenants), hooks.filter(tenant__in=tenants)
    backlog = events.aggregate(oldest=Min("received_at"))
    items["inbound"] = backlog_health(events.count(), backlog["oldest"], now)
    hook_list = list(hooks)
    items["webhooks"] = webhook_health(hook_list, now) if hook_list else Health(GREY, "no webhooks", "", "—")
    return items
