"""Asana webhooks: the receiving view, the signature, the handshake and registration.

The view does four things only (ARCHITECTURE §5): verify, persist the raw event, enqueue a task with
ids, answer — never calling a vendor. Status codes come from exception classes:

    body over WEBHOOK_MAX_BODY_BYTES            413  (nothing of the body is stored)
    unknown endpoint uuid                       404  stored as rejected
    handshake with no pending registration      403  stored as rejected (first-writer takeover, §6.2);
      or a second one for the same registration      the first handshake answered closes the window
    delivery while the registration is pending  401  the handshake's secret is not confirmed yet
    missing / bad X-Hook-Signature              401  stored as rejected with the verdict
    body not JSON / no `events` list            400  stored as rejected
    heartbeat `{"events": []}`                  200  recorded (last_heartbeat_at), nothing queued
    an event we do not act on                   200  stored as ignored
    an event seen before (synthetic key)        200  stored as duplicate, nothing queued
    a task event                                200  stored as queued, `process_asana_event(id)` enqueued

Vendor facts (reference/asana.md): the handshake arrives while our `POST /webhooks` is still open and
must be answered 200/204 echoing `X-Hook-Secret` (§6.2); every delivery carries `X-Hook-Signature`,
HMAC-SHA256 **hex** over the raw body (§6.3); heartbeats are empty signed batches every 8 h; Asana
retries for 24 h and deletes the webhook after that (§6.5); events carry no id, so duplicates are
found with a synthetic key (§6.4). Registration runs from a task or `connector webhooks ensure`, never
inside a web request: it lives in watchdog.py with the watchdog and the gap backfill.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from audit.models import InboundEvent
from integrations.base.redaction import redact_headers
from integrations.base.webhooks import (
    BadCredential,
    DeliveryRejected,
    UnknownEndpoint,
    read_capped_body,
)
from integrations.models import AsanaWebhook, Flow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hook-Signature"
SECRET_HEADER = "X-Hook-Secret"
# A handshake is accepted only this long after registration started (the create call is open).
HANDSHAKE_WINDOW = timedelta(minutes=5)
# Flow kinds whose tasks the worker acts on, and the module function that handles one task change.
EVENT_HANDLERS = {
    Flow.Kind.ASANA_APPROVALS: "integrations.flows.approvals.handle_task_change",
    Flow.Kind.ASANA_PURCHASE_REQUESTS: "integrations.tasks.sage100.handle_task_change",
}
HANDLED_ACTIONS = frozenset({"changed", "added", "undeleted"})
TASK_QUEUE = "integrations.tasks.approvals.process_asana_event"


# ---- errors decide the answer -----------------------------------------------------------------------


class HandshakeRefused(DeliveryRejected):
    status = 403


class BadSignature(BadCredential):
    pass


class Unparseable(DeliveryRejected):
    status = 400
    verdict = InboundEvent.Verdict.VALID


# ---- signature and keys ----------------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    """X-Hook-Signature: HMAC-SHA256 of the raw body, hex (§6.3)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, given: str | None) -> str:
    """The verdict for one delivery; compares in constant time over the raw bytes (never re-serialised)."""
    if not given:
        return InboundEvent.Verdict.MISSING
    if not secret:
        return InboundEvent.Verdict.INVALID
    expected = sign(secret, body)
    return (
        InboundEvent.Verdict.VALID
        if hmac.compare_digest(expected, given.strip().lower())
        else (InboundEvent.Verdict.INVALID)
    )


def _member(event: dict[str, Any], name: str) -> dict[str, Any]:
    """An object member of an event, or {} when it is missing, null or of another JSON type: a signed
    but malformed event is stored as ignored, never answered with a 500 that Asana would retry."""
    value = event.get(name)
    return value if isinstance(value, dict) else {}


def event_dedupe_key(tenant_id: int, event: dict[str, Any]) -> str:
    """Asana events have no id (§6.4): (resource, action, field, value, created_at, user) stands in."""
    change = _member(event, "change")
    value = change.get("new_value") or change.get("added_value") or change.get("removed_value") or {}
    parts = [
        str(tenant_id),
        str(_member(event, "resource").get("gid", "")),
        str(event.get("action", "")),
        str(change.get("field", "")),
        str(value.get("gid", "") if isinstance(value, dict) else value),
        str(_member(event, "parent").get("gid", "")),
        str(event.get("created_at", "")),
        str(_member(event, "user").get("gid", "")),
    ]
    key = "asana:" + ":".join(parts)
    return key if len(key) <= 300 else "asana:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def task_gid_of(event: dict[str, Any]) -> str | None:
    """The task an event is about: the resource itself, or the parent of a story/subtask event."""
    resource = _member(event, "resource")
    if resource.get("resource_type") == "task":
        return str(resource.get("gid") or "") or None
    return None


def is_handled(event: dict[str, Any], connector_user_gid: str) -> tuple[bool, str]:
    """(act on it?, why not). Events caused by the connector's own user are skipped (no echo loops)."""
    if task_gid_of(event) is None:
        kind = _member(event, "resource").get("resource_type", "?")
        return False, f"{kind} events are not used by any flow"
    action = event.get("action")
    if not isinstance(action, str) or action not in HANDLED_ACTIONS:
        return False, f"task {action} events are not used by any flow"
    user = _member(event, "user").get("gid")
    if connector_user_gid and user == connector_user_gid:
        return False, "caused by the connector's own user (write-back echo)"
    return True, ""


# ---- the view --------------------------------------------------------------------------------------


def _headers_of(request: HttpRequest) -> dict[str, str]:
    return redact_headers({k: v for k, v in request.headers.items() if k.lower() != "cookie"})


def _store(hook: AsanaWebhook | None, uuid_: uuid.UUID, request: HttpRequest, body: bytes, **fields: Any):
    return InboundEvent.objects.create(
        tenant=hook.tenant if hook else None,
        source=fields.pop("source", InboundEvent.Source.ASANA_WEBHOOK),
        endpoint_uuid=uuid_,
        headers=_headers_of(request),
        raw_body=body,
        **fields,
    )


def receive(request: HttpRequest, target_uuid: uuid.UUID) -> HttpResponse:
    """POST /hooks/asana/<uuid>/ — handshakes and event deliveries for one registered webhook."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    hook: AsanaWebhook | None = None
    body = b""
    try:
        body = read_capped_body(request)
        hook = AsanaWebhook.objects.select_related("tenant").filter(target_uuid=target_uuid).first()
        if hook is None:
            raise UnknownEndpoint("no webhook registration has this target uuid")
        if SECRET_HEADER in request.headers:
            return _handshake(request, hook, body)
        return _delivery(request, hook, body)
    except DeliveryRejected as exc:
        log.warning("asana webhook %s rejected with %s: %s", target_uuid, exc.status, exc.reason)
        source = (
            InboundEvent.Source.ASANA_HANDSHAKE
            if isinstance(exc, HandshakeRefused)
            else InboundEvent.Source.ASANA_WEBHOOK
        )
        _store(
            hook,
            target_uuid,
            request,
            body if exc.store_body else b"",
            source=source,
            signature=exc.verdict,
            status=InboundEvent.Status.REJECTED,
            status_reason=exc.reason,
        )
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")


def _handshake(request: HttpRequest, hook: AsanaWebhook, body: bytes) -> HttpResponse:
    """Echo X-Hook-Secret, but only while *we* have a registration pending for this uuid (§6.2)."""
    secret = request.headers[SECRET_HEADER]
    now = timezone.now()
    with transaction.atomic():
        row = AsanaWebhook.objects.select_for_update().get(pk=hook.pk)
        if row.state != AsanaWebhook.State.PENDING or not row.pending_since:
            raise HandshakeRefused("handshake without a pending registration")
        if now - row.pending_since > HANDSHAKE_WINDOW:
            raise HandshakeRefused("handshake after the registration window closed")
        if not secret:
            raise HandshakeRefused("handshake with an empty secret")
        if row.secret:
            # Asana sends one handshake per create call; the first one answered closes the window,
            # so a later one (replayed, or a forger racing Asana) can never replace the secret. If the
            # forger was first, Asana's own handshake is refused, the create fails and register()
            # drops the forged secret.
            raise HandshakeRefused("a handshake was already accepted for this registration")
        # Kept until the create call returns; register() compares it with the secret in the 201 body.
        row.secret = secret
        row.save(update_fields=["secret"])
    _store(
        hook,
        hook.target_uuid,
        request,
        body,
        source=InboundEvent.Source.ASANA_HANDSHAKE,
        status=InboundEvent.Status.PROCESSED,
        processed_at=now,
    )
    return HttpResponse(status=200, headers={SECRET_HEADER: secret})


def _delivery(request: HttpRequest, hook: AsanaWebhook, body: bytes) -> HttpResponse:
    if hook.state == AsanaWebhook.State.PENDING:
        # The secret a handshake left is unconfirmed until the 201 arrives: it signs nothing yet.
        raise BadSignature("registration not confirmed yet", verdict=InboundEvent.Verdict.INVALID)
    verdict = verify_signature(hook.secret, body, request.headers.get(SIGNATURE_HEADER))
    if verdict != InboundEvent.Verdict.VALID:
        raise BadSignature(f"signature {verdict}", verdict=verdict)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        raise Unparseable("body is not JSON") from None
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Unparseable("body has no 'events' list")
    now = timezone.now()
    valid = InboundEvent.Verdict.VALID
    if not events:
        _store(
            hook,
            hook.target_uuid,
            request,
            body,
            signature=valid,
            status=InboundEvent.Status.PROCESSED,
            status_reason="heartbeat",
            processed_at=now,
        )
        AsanaWebhook.objects.filter(pk=hook.pk).update(last_heartbeat_at=now)
        return HttpResponse(status=200)
    AsanaWebhook.objects.filter(pk=hook.pk).update(last_event_at=now)
    connector_user = getattr(getattr(hook.tenant, "asana", None), "connector_user_gid", "")
    queued: list[int] = []
    for event in events:
        # One row per event: the event's own JSON (the batch was verified as a whole above).
        raw = json.dumps(event, sort_keys=True).encode() if len(events) > 1 else body
        row = _store_event(hook, request, raw, event, connector_user)
        if row.status == InboundEvent.Status.QUEUED:
            queued.append(row.pk)
    for event_id in queued:
        enqueue(event_id)
    return HttpResponse(status=200)


def _store_event(hook, request, raw: bytes, event: dict[str, Any], connector_user: str) -> InboundEvent:
    key = event_dedupe_key(hook.tenant_id, event)
    handled, why = is_handled(event, connector_user)
    status = InboundEvent.Status.QUEUED if handled else InboundEvent.Status.IGNORED
    try:
        with transaction.atomic():
            return _store(
                hook,
                hook.target_uuid,
                request,
                raw,
                signature=InboundEvent.Verdict.VALID,
                dedupe_key=key,
                status=status,
                status_reason=why,
            )
    except IntegrityError:
        original = InboundEvent.objects.filter(
            source=InboundEvent.Source.ASANA_WEBHOOK, dedupe_key=key
        ).first()
        return _store(
            hook,
            hook.target_uuid,
            request,
            raw,
            signature=InboundEvent.Verdict.VALID,
            status=InboundEvent.Status.DUPLICATE,
            duplicate_of=original,
            status_reason="the same event was received before",
        )


def enqueue(event_id: int) -> None:
    from django_q.tasks import async_task

    async_task(TASK_QUEUE, event_id, task_name=f"asana-event-{event_id}")
