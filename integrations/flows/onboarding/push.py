"""Acumatica push notifications and Asana webhooks during onboarding: what to paste into
Acumatica's Push Notifications screen (SM302000), and whether both directions are verified live.

Acumatica cannot be told the URL through its API: an operator pastes it, with the header, into
SM302000 (reference/acumatica.md §7). It is verified when an authentic push has arrived on the
connection's URL (an InboundEvent whose header matched). Asana webhooks are registered through the
API by `integrations.flows.inbound.watchdog.ensure_webhooks` and verified when their handshake completed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import reverse

from audit.models import InboundEvent
from integrations.models import AcumaticaConnection, AsanaWebhook, Tenant


@dataclass
class PushSettings:
    url: str
    header_name: str
    header_value: str  # only when just made: a stored secret is never shown again
    fresh: bool = False


def push_settings(connection: AcumaticaConnection, *, new_value: bool = False) -> PushSettings:
    """The URL and header for SM302000. The header value is made (and stored encrypted) when none is
    set or `new_value` is asked for, and shown that once; afterwards it is only said to be set."""
    fresh = new_value or not connection.push_secret
    if fresh:
        connection.push_secret = secrets.token_urlsafe(32)
        AcumaticaConnection.objects.filter(pk=connection.pk).update(push_secret=connection.push_secret)
    url = settings.PUBLIC_BASE_URL + reverse("acumatica-push", kwargs={"push_uuid": connection.push_uuid})
    return PushSettings(url, connection.push_header_name, connection.push_secret if fresh else "", fresh)


def push_verified(connection: AcumaticaConnection) -> InboundEvent | None:
    """The last authentic push received on the connection's URL, if any."""
    return (
        InboundEvent.objects.filter(
            source=InboundEvent.Source.ACUMATICA_PUSH,
            endpoint_uuid=connection.push_uuid,
            signature=InboundEvent.Verdict.VALID,
        )
        .order_by("-received_at")
        .first()
    )


def webhook_states(tenant: Tenant) -> list[dict[str, Any]]:
    return [
        {
            "project": h.resource_gid,
            "state": h.state,
            "verified": h.state == AsanaWebhook.State.ACTIVE and bool(h.secret),
            "detail": h.last_failure_content,
        }
        for h in AsanaWebhook.objects.filter(tenant=tenant).order_by("resource_gid", "-pk")
    ]
