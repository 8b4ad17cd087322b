"""What every inbound receiver (Asana webhooks, Acumatica push notifications) shares.

Receivers verify, persist, enqueue and answer — nothing else. A delivery they refuse raises a
`DeliveryRejected` subclass: its `status` goes back to the sender, its `verdict` is stored as the
signature verdict, and `store_body` says whether the raw body is kept on the rejected InboundEvent
(never for an oversize body). Vendors retry on 5xx and give up on 4xx, so our own bugs stay 500.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from audit.models import InboundEvent


class DeliveryRejected(Exception):
    status = 400
    verdict = InboundEvent.Verdict.NOT_APPLICABLE
    store_body = True

    def __init__(self, reason: str, *, verdict: str | None = None):
        super().__init__(reason)
        self.reason = reason
        if verdict is not None:
            self.verdict = verdict


class BodyTooLarge(DeliveryRejected):
    status = 413
    store_body = False


class UnknownEndpoint(DeliveryRejected):
    status = 404


class BadCredential(DeliveryRejected):
    """Wrong or missing signature / shared secret."""

    status = 401


def read_capped_body(request: HttpRequest) -> bytes:
    """The raw body, refused above WEBHOOK_MAX_BODY_BYTES by its declared length and by its real one."""
    cap = settings.WEBHOOK_MAX_BODY_BYTES
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        declared = 0
    if declared > cap:
        raise BodyTooLarge(f"Content-Length {declared} exceeds the {cap}-byte cap")
    body = request.read(cap + 1) if declared == 0 else request.body
    if len(body) > cap:
        raise BodyTooLarge(f"body exceeds the {cap}-byte cap")
    return body
