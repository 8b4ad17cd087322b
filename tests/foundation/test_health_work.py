"""/healthz and the dashboard see a wedged cluster: the clock is moved (timezone.now patched) past each
threshold and the verdict, its reason and the sweep's effect on the run are checked, not only codes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import InboundEvent, SyncRun
from integrations.flows.operations import health
from integrations.models import AsanaWebhook, Flow


@pytest.fixture
def cluster(settings, monkeypatch):
    """A real (not sync) queue on the ORM broker (also when the suite runs with Redis: these tests put
    rows in the ORM queue), with one live cluster heartbeat."""
    q = {k: v for k, v in settings.Q_CLUSTER.items() if k not in ("redis", "broker_class")}
    settings.Q_CLUSTER = {**q, "sync": False, "orm": "default"}
    settings.HEALTH_QUEUE_MAX_AGE_SECONDS = 600
    settings.HEALTH_WORKER_IDLE_SECONDS = 300
    settings.RUN_DEADLINE_SECONDS = 1800
    from django_q.status import Stat

    class FakeStat:
        status = "Idle"
        workers = [1, 2]
        host = "worker-1"

    monkeypatch.setattr(Stat, "get_all", staticmethod(lambda broker=None: [FakeStat()]))


@pytest.fixture
def clock(monkeypatch):
    start = timezone.now()

    def move(**delta):
        monkeypatch.setattr(timezone, "now", lambda: start + timedelta(**delta))
        return start + timedelta(**delta)

    return start, move


def enqueue(at):
    from django_q.brokers import get_broker
    from django_q.models import OrmQ

    return OrmQ.objects.create(key=get_broker().list_key, payload="x", lock=at)


def finished_task(at):
    from django_q.models import Task

    return Task.objects.create(
        id=f"t{at.timestamp()}", name="done", func="len", started=at, stopped=at, success=True
    )


def work(client):
    response = client.get("/healthz")
    return response.status_code, response.json()["checks"]["work"]


@pytest.mark.django_db
def test_a_queue_nobody_takes_turns_red_after_the_thresholds(client, cluster, clock):
    start, move = clock
    enqueue(start)
    finished_task(start - timedelta(minutes=1))
    move(minutes=4)
    code, w = work(client)
    assert code == 200 and w["ok"] is True
    assert w["items"]["queue"]["value"] == "1" and w["items"]["workers"]["level"] == "green"
    move(minutes=6)  # waited 6 min, nothing finished for 7: the workers are stalled
    code, w = work(client)
    assert code == 503 and w["items"]["workers"]["level"] == "red"
    assert "no worker has finished a task" in w["items"]["workers"]["reason"]
    assert w["items"]["queue"]["level"] == "green"  # 6 min is under the queue's 10 min
    move(minutes=11)
    code, w = work(client)
    assert (
        w["items"]["queue"]["level"] == "red" and "oldest queued 11 min ago" in w["items"]["queue"]["reason"]
    )
    assert client.get("/healthz?scope=process").status_code == 200  # liveness only: db and broker


@pytest.mark.django_db
def test_a_busy_cluster_that_keeps_finishing_tasks_stays_green(client, cluster, clock):
    start, move = clock
    enqueue(start)
    finished_task(start + timedelta(minutes=6, seconds=30))
    move(minutes=7)
    code, w = work(client)
    assert code == 200 and w["items"]["workers"]["level"] == "green"


@pytest.mark.django_db
def test_a_run_running_past_its_deadline_is_red_until_the_sweep_abandons_it(client, cluster, clock, tenant):
    start, move = clock
    flow = Flow.objects.create(tenant=tenant, name="bills", kind=Flow.Kind.ACUMATICA_BILLS)
    run = SyncRun.objects.create(tenant=tenant, flow=flow, message="page 3 of 9")
    SyncRun.objects.filter(pk=run.pk).update(started_at=start - timedelta(seconds=30))
    fresh = SyncRun.objects.create(tenant=tenant, flow=flow)
    move(minutes=29)
    assert health.sweep_abandoned_runs() == 0
    assert work(client)[1]["items"]["runs"]["level"] == "green"
    SyncRun.objects.filter(pk=fresh.pk).update(started_at=start + timedelta(minutes=20))
    move(minutes=31)
    code, w = work(client)
    assert code == 503 and w["items"]["runs"]["level"] == "red" and w["items"]["runs"]["value"] == "1"
    assert health.sweep_abandoned_runs() == 1
    assert health.sweep_abandoned_runs() == 0
    run.refresh_from_db()
    fresh.refresh_from_db()
    assert run.status == SyncRun.Status.ABANDONED and run.finished_at == start + timedelta(minutes=31)
    assert run.message.startswith("page 3 of 9\nabandoned: still 'running' 31 min after it started")
    assert "Sync now" in run.message
    assert fresh.status == SyncRun.Status.RUNNING
    assert work(client)[1]["items"]["runs"]["level"] == "green"


@pytest.mark.django_db
def test_waiting_inbound_events_and_a_failing_webhook_turn_it_red(client, cluster, clock, tenant):
    start, move = clock
    InboundEvent.objects.create(
        tenant=tenant, source=InboundEvent.Source.ACUMATICA_PUSH, status=InboundEvent.Status.QUEUED
    )
    move(minutes=10)
    code, w = work(client)
    assert w["items"]["inbound"]["level"] == "amber" and code == 200
    move(minutes=31)
    code, w = work(client)
    assert code == 503 and w["items"]["inbound"]["level"] == "red"
    assert "1 event(s) waiting" in w["items"]["inbound"]["reason"]
    InboundEvent.objects.update(status=InboundEvent.Status.PROCESSED)
    hook = AsanaWebhook.objects.create(tenant=tenant, resource_gid="1200000000000009", state="active")
    assert work(client)[0] == 200
    AsanaWebhook.objects.filter(pk=hook.pk).update(state=AsanaWebhook.State.FAILING)
    code, w = work(client)
    assert code == 503 and "failing deliveries" in w["items"]["webhooks"]["reason"]


@pytest.mark.django_db
def test_the_dashboard_shows_the_cluster_panel_red_with_the_reason(admin_client, cluster, clock, tenant):
    start, move = clock
    enqueue(start)
    move(minutes=12)
    page = admin_client.get("/admin/").content.decode()
    assert 'id="cluster-health"' in page
    assert 'class="health-workers"' in page and "rag-red" in page
    assert "no worker has finished a task ever" in page


@pytest.mark.django_db
def test_connector_health_sweeps_and_reports_with_its_exit_code(cluster, clock, tenant, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    start, move = clock
    run = SyncRun.objects.create(tenant=tenant)
    enqueue(start)
    move(minutes=31)
    with pytest.raises(CommandError):
        call_command("connector", "health")
    out = capsys.readouterr()
    assert "runs" in out.err and "past the 1800 s deadline" in out.err
    with pytest.raises(CommandError):  # the queue is still stuck
        call_command("connector", "health", "--sweep")
    assert "Marked 1 run(s) abandoned." in capsys.readouterr().out
    run.refresh_from_db()
    assert run.status == SyncRun.Status.ABANDONED


@pytest.mark.django_db
def test_with_the_shipped_threshold_a_wedge_is_red_within_two_minutes(client, cluster, clock, settings):
    """Issue 18: not-ok within 2 minutes of a wedge, with the product's defaults (a monitor probing
    every 15 s or so still sees it in time)."""
    from connector_site import settings as shipped

    settings.HEALTH_WORKER_IDLE_SECONDS = shipped.HEALTH_WORKER_IDLE_SECONDS
    assert shipped.HEALTH_WORKER_IDLE_SECONDS <= 120 - 15
    start, move = clock
    finished_task(start)  # the last task finished; then the workers wedge while tasks keep coming
    enqueue(start)
    move(seconds=60)
    assert work(client)[0] == 200
    move(seconds=shipped.HEALTH_WORKER_IDLE_SECONDS + 1)
    code, w = work(client)
    assert code == 503 and w["items"]["workers"]["level"] == "red"
