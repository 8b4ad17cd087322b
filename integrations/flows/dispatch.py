"""Dispatch of one stored Asana event to every flow that consumes its project's task changes.

The django-q2 entry point for webhook deliveries, catch-up polls and gap backfills alike (ids in): the
task is re-read (events are hints), then each enabled flow of the event's project whose kind consumes task
events (Flow.TASK_EVENT_KINDS) gets it through its registry entry. A retryable error schedules one retry
(integrations/base/retries.py, the one retry policy); a permanent error ends the event as failed with the
reason, visible and replayable in the console.
"""

from __future__ import annotations

import json
import logging

from django.utils import timezone

from audit.models import InboundEvent
from integrations.asana.webhooks import task_gid_of
from integrations.base import errors
from integrations.base.retries import schedule_retry
from integrations.flows import clients as flow_clients
from integrations.flows import registry
from integrations.flows.common.task_events import ASANA_EVENT_TASK
from integrations.models import AsanaWebhook, Flow

log = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 8


def process_asana_event(event_id: int, attempt: int = 1) -> str:
    """One stored Asana event: dispatch the task it names to every flow that consumes its project."""

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
        for f in Flow.objects.filter(tenant=row.tenant, enabled=True, kind__in=Flow.TASK_EVENT_KINDS)
        if f.asana_project_gid == project
    ]
    if not task_gid or not flows:
        return _done(row, InboundEvent.Status.IGNORED, "no flow consumes this task")
    try:
        clients = flow_clients.clients_for(row.tenant)
        task = clients.asana.get_task(task_gid)
        results = [
            registry.task_event_handler(f.kind)(f, task_gid, clients=clients, inbound_event=row, task=task)
            for f in flows
        ]
    except errors.NotFound:
        return _done(row, InboundEvent.Status.IGNORED, "the task no longer exists")
    except errors.RetryableError as exc:
        if attempt >= MAX_EVENT_ATTEMPTS:
            return _done(row, InboundEvent.Status.FAILED, f"gave up after {attempt} attempts: {exc}")
        InboundEvent.objects.filter(pk=row.pk).update(status_reason=f"attempt {attempt}: {exc}")
        schedule_retry(
            ASANA_EVENT_TASK,
            event_id,
            attempt + 1,
            delay=max(exc.retry_after or 30 * attempt, 5),
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
