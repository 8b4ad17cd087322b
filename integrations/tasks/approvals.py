"""django-q2 entry points for Asana events, approvals and the webhook watchdog (ids in, flows do the work).

A retryable error reschedules the same task once after its `retry_after` (the broker never retries
blindly: Q_CLUSTER max_attempts is 1); a permanent error is already in the audit trail and the task ends.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.utils import timezone

from audit.models import InboundEvent
from integrations.base import errors
from integrations.models import AsanaWebhook, Flow, Tenant

log = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 8


def retry_later(func: str, *args, delay: float, name: str) -> None:
    from django_q.models import Schedule

    Schedule.objects.create(
        func=func,
        args=",".join(repr(a) for a in args),
        name=f"{name}@{timezone.now():%H%M%S%f}",
        schedule_type=Schedule.ONCE,
        repeats=1,
        next_run=timezone.now() + timedelta(seconds=max(delay, 5)),
    )


def process_asana_event(event_id: int, attempt: int = 1) -> str:
    """One stored Asana event: dispatch the task it names to every flow that consumes its project."""
    from django.utils.module_loading import import_string

    from integrations.asana.webhooks import EVENT_HANDLERS, task_gid_of
    from integrations.flows.approvals import clients_for

    row = InboundEvent.objects.select_related("tenant").get(pk=event_id)
    if row.status in (
        InboundEvent.Status.PROCESSED,
        InboundEvent.Status.IGNORED,
        InboundEvent.Status.DUPLICATE,
    ):
        return f"already {row.status}"
    event = json.loads(bytes(row.raw_body))
    if "events" in event:  # a single-event batch is stored as received
        event = event["events"][0]
    task_gid = task_gid_of(event) or ""
    hook = AsanaWebhook.objects.filter(target_uuid=row.endpoint_uuid).first()
    project = hook.resource_gid if hook else (event.get("project") or "")
    flows = [
        f
        for f in Flow.objects.filter(tenant=row.tenant, enabled=True, kind__in=list(EVENT_HANDLERS))
        if f.asana_project_gid == project
    ]
    if not task_gid or not flows:
        return _done(row, InboundEvent.Status.IGNORED, "no flow consumes this task")
    try:
        clients = clients_for(row.tenant)
        task = clients.asana.get_task(task_gid)
        results = [
            import_string(EVENT_HANDLERS[f.kind])(f, task_gid, clients=clients, inbound_event=row, task=task)
            for f in flows
        ]
    except errors.NotFound:
        return _done(row, InboundEvent.Status.IGNORED, "the task no longer exists")
    except errors.RetryableError as exc:
        if attempt >= MAX_EVENT_ATTEMPTS:
            return _done(row, InboundEvent.Status.FAILED, f"gave up after {attempt} attempts: {exc}")
        InboundEvent.objects.filter(pk=row.pk).update(status_reason=f"attempt {attempt}: {exc}")
        retry_later(
            "integrations.tasks.approvals.process_asana_event",
            event_id,
            attempt + 1,
            delay=exc.retry_after or 30 * attempt,
            name=f"asana-event-{event_id}",
        )
        return f"retrying: {exc}"
    except (errors.PermanentError, errors.ConfigurationError) as exc:
        return _done(row, InboundEvent.Status.FAILED, str(exc))
    return _done(row, InboundEvent.Status.PROCESSED, "; ".join(results))


def _done(row: InboundEvent, status: str, reason: str) -> str:
    InboundEvent.objects.filter(pk=row.pk).update(
        status=status, status_reason=reason[:2000], processed_at=timezone.now()
    )
    return reason


def poll_approvals(tenant_id: int | None = None) -> str:
    """Catch-up: task changes Asana may never deliver (at-most-once, §6.5), processed like events."""
    from integrations.asana.watchdog import backfill_flow
    from integrations.flows.approvals import clients_for

    done = []
    tenants = Tenant.objects.filter(active=True, **({"pk": tenant_id} if tenant_id else {}))
    for tenant in tenants:
        flows = list(tenant.flows.filter(enabled=True, kind=Flow.Kind.ASANA_APPROVALS))
        if not flows or not hasattr(tenant, "asana"):
            continue
        clients = clients_for(tenant)
        for flow in flows:
            try:
                done.append(f"{flow}: {backfill_flow(flow, clients=clients)}")
            except errors.ConnectorError as exc:
                # The cursor did not move: the next pass covers this window. Other flows and tenants
                # are polled regardless (one tenant's 429 or outage must not stop everyone's catch-up).
                log.warning("approval catch-up poll of %s stopped: %s", flow, exc)
                done.append(f"{flow}: not polled, the next pass retries ({exc})")
    return "; ".join(done) or "no approval flows"


def check_webhooks(tenant_id: int | None = None) -> str:
    """The hourly watchdog: failing/deleted webhooks re-registered, gaps backfilled."""
    from integrations.asana.watchdog import check_tenant
    from integrations.flows.approvals import clients_for

    out = []
    for tenant in Tenant.objects.filter(active=True, **({"pk": tenant_id} if tenant_id else {})):
        if not hasattr(tenant, "asana"):
            continue
        try:
            report = check_tenant(tenant, clients=clients_for(tenant))
        except errors.ConnectorError as exc:
            # A gap backfill that failed is covered by the catch-up poll (its cursor did not move).
            log.warning("webhook watchdog for %s stopped: %s", tenant.slug, exc)
            out.append(f"{tenant.slug}: stopped, the next run and the catch-up poll retry ({exc})")
            continue
        out.append(f"{tenant.slug}: {report.summary()}")
    return "; ".join(out) or "no tenants"


def ensure_schedules() -> list[str]:
    """Idempotent: the watchdog hourly, the roster daily, the approval catch-up poll every 15 minutes."""
    from django_q.models import Schedule

    wanted = {
        "asana-webhook-watchdog": ("integrations.tasks.approvals.check_webhooks", Schedule.HOURLY, None),
        "approval-catch-up-poll": ("integrations.tasks.approvals.poll_approvals", Schedule.MINUTES, 15),
        "employee-roster": ("integrations.tasks.roster.sync_roster_all", Schedule.DAILY, None),
    }
    changed = []
    for name, (func, kind, minutes) in wanted.items():
        _, created = Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": kind, "minutes": minutes, "repeats": -1}
        )
        changed.append(f"{name}: {'created' if created else 'kept'}")
    return changed


def register_webhooks(tenant_id: int) -> str:
    """The console's "Register webhooks" action runs this in a worker (never in the web request: §6.2)."""
    from integrations.asana.watchdog import ensure_webhooks
    from integrations.flows.approvals import clients_for

    tenant = Tenant.objects.get(pk=tenant_id)
    results = ensure_webhooks(tenant, clients_for(tenant).asana)
    return (
        "; ".join(f"{r.hook.resource_gid}: {r.action} {r.detail}".strip() for r in results) or "nothing to do"
    )
