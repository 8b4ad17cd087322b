"""The scale-out proof's hands inside the deployment, with the deployment's environment (its own
database, broker and settings): `python -m tests.scale.driver serve` answers one JSON request per
line (so Django starts once), `python -m tests.scale.driver CMD [JSON]` answers one.

The test process cannot share its own (pytest-django) database with the web process and the
qcluster workers, so everything that reads or writes the deployment's database goes through here:

    info                       ids the scenario needs (tenant, flows, push endpoint)
    enqueue JSON               [[func, *args], ...] queued with django-q2's async_task, in order
    wait-links JSON            {"at_least": N, "timeout": S}: until N documents are linked
    wait-drained JSON          {"quiet": S, "timeout": S, "after": [...]}: until the broker queue is
                               empty, every cluster idle and nothing was recorded for `quiet` seconds
    wait-claims JSON           {"lease": S, "timeout": S}: until no create claim is younger than lease
    wait-released JSON         {"at_least": N, "timeout": S}: until N documents record a release
    wait-webhook JSON          {"timeout": S}: until the Asana webhook registration is active
    requeue-asana-events       every Asana event the web process queued, queued again
    clusters                   each running cluster's sentinel, worker, monitor and pusher pids
    completions                every finished task: [stopped (epoch s), success, func]
    leases                     the rate budgets' in-flight leases held now (holder pid, alive, age)
    report                     the state the invariants are checked on
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from typing import Any

TASKS = {
    "poll_flow": "integrations.flows.documents.tasks.poll_flow",
    "process_document": "integrations.flows.documents.tasks.process_document",
    "poll_approvals": "integrations.flows.inbound.tasks.poll_approvals",
    "process_asana_event": "integrations.flows.dispatch.process_asana_event",
    "register_webhooks": "integrations.flows.inbound.tasks.register_webhooks",
}
# Signs of two transactions fighting instead of one waiting for the other.
CONTENTION = ("deadlock", "could not serialize", "database is locked", "lock timeout")


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector_site.settings")
    import django

    django.setup()


def info(_arg: Any) -> dict[str, Any]:
    from integrations.acumatica.client import client_for as acumatica_client
    from integrations.asana.client import client_for as asana_client
    from integrations.models import Flow, Tenant

    tenant = Tenant.objects.get(slug=os.environ.get("SCALE_TENANT", "scale"))
    acumatica = acumatica_client(tenant.acumatica)
    budgets = [acumatica.rate_limiter, acumatica.session_gate, asana_client(tenant.asana).rate_limiter]
    return {
        "budget_keys": [b.state_key for b in budgets if hasattr(b, "state_key")],
        "tenant": tenant.pk,
        "flows": {f.kind: f.pk for f in Flow.objects.filter(tenant=tenant)},
        "acumatica_connection": tenant.acumatica.pk,
        "push_uuid": str(tenant.acumatica.push_uuid),
        "push_header": tenant.acumatica.push_header_name,
    }


def enqueue(calls: list[list[Any]]) -> dict[str, Any]:
    from django_q.tasks import async_task

    ids = [async_task(TASKS[call[0]], *call[1:]) for call in calls]
    return {"queued": len(ids)}


def _linked() -> int:
    from integrations.models import RecordLink

    return RecordLink.objects.exclude(asana_task_gid="").count()


def wait_links(arg: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + float(arg.get("timeout", 60))
    while time.monotonic() < deadline:
        if _linked() >= int(arg["at_least"]):
            return {"ok": True, "linked": _linked()}
        time.sleep(0.2)
    return {"ok": False, "linked": _linked()}


def wait_released(arg: dict[str, Any]) -> dict[str, Any]:
    """Until N documents record a release (retries included: they run on the cluster's schedule)."""
    from integrations.models import RecordLink

    def released() -> int:
        return sum(
            1
            for s in RecordLink.objects.values_list("approved_snapshot", flat=True)
            if (s or {}).get("released_at")
        )

    deadline = time.monotonic() + float(arg.get("timeout", 60))
    while time.monotonic() < deadline:
        if released() >= int(arg["at_least"]):
            return {"ok": True, "released": released()}
        time.sleep(0.5)
    return {"ok": False, "released": released()}


def wait_webhook(arg: dict[str, Any]) -> dict[str, Any]:
    """Until the Asana webhook registration is complete on our side (the 201 stored: state active)."""
    from integrations.models import AsanaWebhook

    deadline = time.monotonic() + float(arg.get("timeout", 60))
    while time.monotonic() < deadline:
        if AsanaWebhook.objects.filter(state=AsanaWebhook.State.ACTIVE).exists():
            return {"ok": True}
        time.sleep(0.2)
    return {"ok": False, "webhooks": list(AsanaWebhook.objects.values("state", "last_failure_content"))}


def requeue_asana_events(_arg: Any) -> dict[str, Any]:
    """Every Asana task event the web process queued, queued once more (a redelivering broker)."""
    from django_q.tasks import async_task

    from audit.models import InboundEvent

    ids = list(
        InboundEvent.objects.filter(
            source=InboundEvent.Source.ASANA_WEBHOOK,
            status__in=(InboundEvent.Status.QUEUED, InboundEvent.Status.PROCESSED),
        )
        .exclude(status_reason="heartbeat")
        .values_list("pk", flat=True)
    )
    for pk in ids:
        async_task(TASKS["process_asana_event"], pk)
    return {"queued": len(ids)}


def _clusters() -> list[Any]:
    from django_q.brokers import get_broker
    from django_q.status import Stat

    return list(Stat.get_all(get_broker()))


def clusters(_arg: Any) -> list[dict[str, Any]]:
    return [
        {
            "pid": s.pid,
            "sentinel": s.sentinel,
            "workers": list(s.workers),
            "monitor": s.monitor,
            "pusher": s.pusher,
            "status": s.status,
            "reincarnations": s.reincarnations,
        }
        for s in _clusters()
    ]


def completions(_arg: Any) -> list[list[Any]]:
    from django_q.models import Task

    return [
        [t.stopped.timestamp(), t.success, t.func]
        for t in Task.objects.only("stopped", "success", "func").order_by("stopped")
    ]


def leases(_arg: Any) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from integrations.base.ratelimit import held_leases

    return [asdict(lease) for lease in held_leases()]


def _activity() -> tuple:
    """What changes while anything is at work: calls, audit entries, events, finished tasks."""
    from django.db.models import Max
    from django_q.models import OrmQ, Task

    from audit.models import ApiCall, AuditEntry, InboundEvent

    return (
        ApiCall.objects.aggregate(m=Max("id"))["m"],
        AuditEntry.objects.aggregate(m=Max("id"))["m"],
        InboundEvent.objects.aggregate(m=Max("id"))["m"],
        Task.objects.aggregate(m=Max("stopped"))["m"],
        OrmQ.objects.count(),
    )


def _title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _busy() -> str:
    """Why the deployment is not idle yet ("" = idle). A worker running a task is titled
    "… processing <task>" by django-q2 (setproctitle), which the cluster's own status cannot tell."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    waiting = get_broker().queue_size()
    if waiting:
        return f"{waiting} task(s) waiting in the broker"
    stats = _clusters()
    if not stats:
        return "no cluster reports its status"
    working = [s for s in stats if s.status != Conf.IDLE]
    if working:
        return f"{len(working)} cluster(s) with queued tasks or results"
    busy = [pid for s in stats for pid in s.workers if " processing " in _title(pid)]
    return f"{len(busy)} worker(s) running a task" if busy else ""


def wait_drained(arg: dict[str, Any]) -> dict[str, Any]:
    """Quiet = empty broker, idle clusters and no new row anywhere for `quiet` seconds."""
    quiet = float(arg.get("quiet", 1.5))
    deadline = time.monotonic() + float(arg.get("timeout", 90))
    last, since, why = None, time.monotonic(), "starting"
    while time.monotonic() < deadline:
        why = _busy()
        now_activity = _activity()
        if why or now_activity != last:
            last, since = now_activity, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return {"ok": True}
        time.sleep(0.25)
    return {"ok": False, "why": why or "rows still being written"}


def wait_claims(arg: dict[str, Any]) -> dict[str, Any]:
    """Until every create claim left by a killed worker is older than the flow's lease."""
    from django.utils import timezone

    from integrations.flows.documents.sync import IN_FLIGHT
    from integrations.models import RecordLink

    lease = timedelta(seconds=float(arg["lease"]))
    deadline = time.monotonic() + float(arg.get("timeout", 60))
    while time.monotonic() < deadline:
        young = RecordLink.objects.filter(
            state_reason=IN_FLIGHT, attempt_started_at__gt=timezone.now() - lease
        ).count()
        if not young:
            return {"ok": True}
        time.sleep(0.5)
    return {"ok": False}


def report(_arg: Any) -> dict[str, Any]:
    from django.db.models import Count
    from django_q.models import Failure, Schedule

    from audit.models import AuditEntry, InboundEvent, SyncRun
    from integrations.models import RecordLink

    links = [
        {
            "kind": link.kind,
            "type": link.acumatica_type,
            "ref": link.acumatica_ref,
            "gid": link.asana_task_gid,
            "state": link.state,
            "reason": link.state_reason,
            "released_at": (link.approved_snapshot or {}).get("released_at"),
            "audit": link.audit_count,
        }
        for link in RecordLink.objects.annotate(audit_count=Count("audit_entries"))
    ]
    writes = [
        {
            "id": e.id,
            "key": e.record_key,
            "operation": e.operation,
            "modified": (e.source_snapshot or {}).get("LastModifiedDateTime"),
            "payload": e.payload,
        }
        for e in AuditEntry.objects.filter(
            operation__in=("create_task", "update_task"), status="succeeded"
        ).order_by("id")
    ]
    releases = list(
        AuditEntry.objects.filter(operation__endswith=".release")
        .values("record_key", "status", "error")
        .order_by("id")
    )
    texts = [
        *(f"audit {e.operation} {e.record_key}: {e.error}" for e in AuditEntry.objects.exclude(error="")),
        *(f"event {e.pk}: {e.status_reason}" for e in InboundEvent.objects.exclude(status_reason="")),
        *(f"sync run {r.pk}: {r.message}" for r in SyncRun.objects.exclude(message="")),
        *(f"task {f.func}{f.args}: {f.result}" for f in Failure.objects.all()),
    ]
    return {
        "links": links,
        "writes": writes,
        "releases": releases,
        "task_failures": [f"{f.func}{f.args}: {str(f.result)[:300]}" for f in Failure.objects.all()],
        "contention": [t[:400] for t in texts if any(c in t.lower() for c in CONTENTION)],
        "events": list(InboundEvent.objects.values("source", "status").annotate(n=Count("id"))),
        "runs": list(SyncRun.objects.values("status").annotate(n=Count("id"))),
        "pending_retries": Schedule.objects.filter(schedule_type=Schedule.ONCE).count(),
        "evidence": {  # what the concurrency and the faults actually made the product do
            name: AuditEntry.objects.filter(error__contains=marker).count()
            for name, marker in (
                ("create deferred to the worker already creating", "another worker started creating"),
                ("older copy skipped", "stale copy"),
                ("task adopted by ERP reference", "adopted task"),
                ("release already done", "already"),
            )
        },
    }


COMMANDS = {
    "info": info,
    "enqueue": enqueue,
    "wait-links": wait_links,
    "wait-drained": wait_drained,
    "wait-claims": wait_claims,
    "wait-released": wait_released,
    "wait-webhook": wait_webhook,
    "requeue-asana-events": requeue_asana_events,
    "clusters": clusters,
    "completions": completions,
    "leases": leases,
    "report": report,
}


ANSWER = "@@ "  # marks the answer lines on stdout (anything else printed there is not an answer)


def serve() -> None:
    """One request per stdin line, `{"command": …, "arg": …}`; one answer line each on stdout."""
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"ok_call": True, "value": COMMANDS[request["command"]](request.get("arg"))}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which fails with it
            answer = {"ok_call": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(ANSWER + json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    _setup()
    if argv[1] == "serve":
        serve()
        return 0
    arg = json.loads(argv[2]) if len(argv) > 2 else None
    print(ANSWER + json.dumps({"ok_call": True, "value": COMMANDS[argv[1]](arg)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
