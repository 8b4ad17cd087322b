"""The two inbound endpoints, each built with the queue of the flow task that processes what it stores.

The receive pipeline is the base floor's (integrations/base/receiver.py); each system fills its hooks
(integrations/asana/webhooks.py, integrations/acumatica/push.py); this module hands each one the task
that processes a stored event, so the wiring points down: connector_site/urls.py serves these two.
"""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from integrations.acumatica.push import PushReceiver
from integrations.asana.webhooks import AsanaReceiver
from integrations.flows.common import task_events
from integrations.flows.documents import queue as documents_queue
from integrations.models import AcumaticaConnection, AsanaConnection, AsanaWebhook

# Looked up at each call: the queue function is the one patch point for every path that queues.
asana = AsanaReceiver(enqueue=lambda event_id: task_events.enqueue_asana_event(event_id))
acumatica_push = PushReceiver(enqueue=lambda event_id: documents_queue.enqueue_push_event(event_id))

# Each receiver caches an endpoint and its secret per process: a change made in this process clears the
# cache at once; other processes re-read within ENDPOINT_TTL, or at once when a delivery fails
# verification against their cached secret.
for _model, _rcv in ((AsanaWebhook, asana), (AsanaConnection, asana), (AcumaticaConnection, acumatica_push)):
    for _signal in (post_save, post_delete):
        _signal.connect(
            _rcv.invalidate, sender=_model, weak=False, dispatch_uid=f"ingest-{_model.__name__}-{id(_signal)}"
        )
