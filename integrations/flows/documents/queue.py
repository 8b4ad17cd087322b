"""Queueing a stored Acumatica push notification for the documents flow (names the task, imports nothing
of the flow, so the receiver can be built without it)."""

from __future__ import annotations

PUSH_EVENT_TASK = "integrations.flows.documents.tasks.process_push_event"


def enqueue_push_event(event_id: int) -> None:
    from integrations.base.enqueue import enqueue_task

    enqueue_task(PUSH_EVENT_TASK, event_id, task_name=f"acumatica-push-{event_id}")
