"""Asana task changes as events: which projects' task changes flows consume, storing a change the
connector found itself (a catch-up poll, a gap backfill, an adopted task's check) as an event, and
queueing a stored event for dispatch. Shared by the inbound side and the documents flow; it imports no
flow, and it is the one place that names the dispatch task (tests/flows/test_registry.py resolves every
django-q2 task name the product queues or schedules, so a renamed module fails a test, not a webhook).
"""

from __future__ import annotations

import json
from typing import Any

from django.db import IntegrityError, transaction

from audit.models import InboundEvent
from integrations.base.enqueue import enqueue_task
from integrations.models import AsanaWebhook, Flow, Tenant

ASANA_EVENT_TASK = "integrations.flows.dispatch.process_asana_event"


def enqueue_asana_event(event_id: int) -> None:
    enqueue_task(ASANA_EVENT_TASK, event_id, task_name=f"asana-event-{event_id}")


def webhook_projects(tenant: Tenant) -> dict[str, Flow]:
    """Project GID → the first enabled flow that consumes its task events (one webhook per project)."""
    out: dict[str, Flow] = {}
    for flow in tenant.flows.filter(enabled=True, kind__in=Flow.TASK_EVENT_KINDS).order_by("pk"):
        if flow.asana_project_gid:
            out.setdefault(flow.asana_project_gid, flow)
    return out


def store_task_change(
    tenant: Tenant, project_gid: str, task: dict[str, Any], dedupe_key: str, reason: str
) -> int | None:
    """Store a task change the connector found itself (not delivered by Asana) as a queued event, for
    the flows that consume the project's task events. None when `dedupe_key` was stored before. The
    caller enqueues the id once its transaction has committed."""
    hook = AsanaWebhook.objects.filter(tenant=tenant, resource_gid=project_gid).order_by("-pk").first()
    event = {
        "action": "changed",
        "source": "poll",
        "project": project_gid,
        "created_at": task.get("modified_at"),
        "resource": {
            "gid": str(task["gid"]),
            "resource_type": "task",
            "resource_subtype": task.get("resource_subtype"),
        },
    }
    try:
        with transaction.atomic():
            row = InboundEvent.objects.create(
                tenant=tenant,
                source=InboundEvent.Source.ASANA_WEBHOOK,
                endpoint_uuid=hook.target_uuid if hook else None,
                raw_body=json.dumps(event).encode(),
                dedupe_key=dedupe_key,
                status=InboundEvent.Status.QUEUED,
                status_reason=reason,
            )
    except IntegrityError:
        return None
    return row.pk
