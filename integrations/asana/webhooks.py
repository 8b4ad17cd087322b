"""Asana webhooks: the receiving view, the signature, the handshake and registration.

The view does four things only (ARCHITECTURE §5): verify, persist the raw event, enqueue a task with
ids, answer — never calling a vendor; the pipeline is base/receiver.Receiver, this module its hooks.
Status codes come from exception classes:

    body over WEBHOOK_MAX_BODY_BYTES            413  no row: refused, logged, counted (base/refusals.py)
    unknown endpoint uuid                       404  no row: refused, logged, counted
    handshake with no pending registration      403  no row (first-writer takeover, §6.2);
      or a second one for the same registration      the first handshake answered closes the window
    delivery while the registration is pending  401  no row: the handshake's secret is not confirmed yet
    heartbeat while the registration is pending 200  recorded, signed with the handshake's secret (Asana
                                                     sends one right after the handshake, §6.5); it
                                                     carries no event and confirms nothing
    missing / bad X-Hook-Signature              401  no row: refused, logged, counted
    any of the above, repeatedly from one address  429  with Retry-After, no database read
    body not JSON / no `events` list            400  stored as rejected (authentic: signed by Asana)
    heartbeat `{"events": []}`                  200  recorded (last_heartbeat_at at most once a minute)
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

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from audit.models import InboundEvent
from integrations.base.receiver import (
    TOUCH_EVERY,
    BadCredential,
    DeliveryRejected,
    Endpoint,
    Receiver,
    UnknownEndpoint,
    dispatch,
    store_once,
)
from integrations.base.redaction import redact_headers
from integrations.models import AsanaWebhook

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hook-Signature"
SECRET_HEADER = "X-Hook-Secret"
# A handshake is accepted only this long after registration started (the create call is open).
HANDSHAKE_WINDOW = timedelta(minutes=5)
HANDLED_ACTIONS = frozenset({"changed", "added", "undeleted"})


# ---- errors decide the answer -----------------------------------------------------------------------


class HandshakeRefused(DeliveryRejected):
    status = 403
    authenticated = False  # anyone can send X-Hook-Secret: a refused one costs no row


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


def _is_heartbeat(body: bytes) -> bool:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return False
    return isinstance(payload, dict) and payload.get("events") == []


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


# ---- the receiver ----------------------------------------------------------------------------------


class AsanaReceiver(Receiver):
    """Handshakes go to the database every time (they change the row); deliveries use the cached
    endpoint: the webhook's secret (its one decryption) and, joined in the same read, the tenant's
    connector user gid (a plain column) for the echo filter."""

    source = InboundEvent.Source.ASANA_WEBHOOK
    name = "asana webhook"

    def load_endpoint(self, endpoint_uuid: uuid.UUID) -> Endpoint | None:
        row = (
            AsanaWebhook.objects.filter(target_uuid=endpoint_uuid)
            .values_list("pk", "tenant_id", "secret", "state", "tenant__asana__connector_user_gid")
            .first()
        )
        if row is None:
            return None
        pk, tenant_id, secret, state, connector_user = row
        return Endpoint(pk, tenant_id, secret or "", {"state": state, "connector_user": connector_user or ""})

    def stored_headers(self, endpoint: Endpoint | None, request: HttpRequest) -> dict[str, str]:
        return redact_headers({k: v for k, v in request.headers.items() if k.lower() != "cookie"})

    def intercept(self, request: HttpRequest, endpoint_uuid: uuid.UUID, body: bytes) -> HttpResponse | None:
        if SECRET_HEADER not in request.headers:
            return None
        return _handshake(self, request, endpoint_uuid, body)

    def verify(self, endpoint: Endpoint, request: HttpRequest, body: bytes) -> None:
        if endpoint.fields["state"] == AsanaWebhook.State.PENDING:
            # The secret a handshake left is unconfirmed until the 201 arrives: it signs no event yet.
            # But Asana sends an empty heartbeat "at the initial handshake" (reference/asana.md §6.5),
            # possibly before our create call returns: answered 200 (a 401 would count against the
            # webhook), as long as the handshake's secret signed it. It carries nothing to act on.
            if (
                endpoint.secret
                and _is_heartbeat(body)
                and verify_signature(endpoint.secret, body, request.headers.get(SIGNATURE_HEADER))
                == InboundEvent.Verdict.VALID
            ):
                return
            raise BadSignature("registration not confirmed yet", verdict=InboundEvent.Verdict.INVALID)
        verdict = verify_signature(endpoint.secret, body, request.headers.get(SIGNATURE_HEADER))
        if verdict != InboundEvent.Verdict.VALID:
            raise BadSignature(f"signature {verdict}", verdict=verdict)

    def accept(self, endpoint: Endpoint, request: HttpRequest, body: bytes) -> HttpResponse:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            raise Unparseable("body is not JSON") from None
        events = payload.get("events") if isinstance(payload, dict) else None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise Unparseable("body has no 'events' list")
        uuid_ = endpoint.uuid
        valid = InboundEvent.Verdict.VALID
        if not events:
            pending = endpoint.fields["state"] == AsanaWebhook.State.PENDING
            self.store(
                endpoint,
                uuid_,
                request,
                body,
                signature=valid,
                status=InboundEvent.Status.PROCESSED,
                status_reason="heartbeat (registration pending)" if pending else "heartbeat",
                processed_at=timezone.now(),
            )
            if not pending:  # an unconfirmed secret says nothing about the webhook's health
                self._touch(endpoint, "last_heartbeat_at")
            return HttpResponse(status=200)
        queued: list[int] = []
        for event in events:
            # One row per event: the event's own JSON (the batch was verified as a whole above).
            raw = json.dumps(event, sort_keys=True).encode() if len(events) > 1 else body
            handled, why = is_handled(event, endpoint.fields["connector_user"])
            event_id, new = store_once(
                tenant_id=endpoint.tenant_id,
                source=self.source,
                endpoint_uuid=uuid_,
                headers=self.stored_headers(endpoint, request),
                raw_body=raw,
                signature=valid,
                dedupe_key=event_dedupe_key(endpoint.tenant_id, event),
                status=InboundEvent.Status.QUEUED if handled else InboundEvent.Status.IGNORED,
                status_reason=why,
            )
            if new and handled:
                queued.append(event_id)
        for event_id in queued:
            dispatch(self.enqueue, event_id)
        self._touch(endpoint, "last_event_at")
        return HttpResponse(status=200)

    def _touch(self, endpoint: Endpoint, column: str) -> None:
        """last_event_at / last_heartbeat_at: at most once a minute per process, and only forwards."""
        if not self.should_touch(endpoint, column):
            return
        now = timezone.now()
        stale = Q(**{f"{column}__isnull": True}) | Q(**{f"{column}__lt": now - TOUCH_EVERY})
        AsanaWebhook.objects.filter(stale, pk=endpoint.pk).update(**{column: now})


def _handshake(rcv: AsanaReceiver, request: HttpRequest, target_uuid: uuid.UUID, body: bytes) -> HttpResponse:
    """Echo X-Hook-Secret, but only while *we* have a registration pending for this uuid (§6.2)."""
    secret = request.headers[SECRET_HEADER]
    now = timezone.now()
    with transaction.atomic():
        row = AsanaWebhook.objects.select_for_update().filter(target_uuid=target_uuid).first()
        if row is None:
            raise UnknownEndpoint("no webhook registration has this target uuid")
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
    endpoint = Endpoint(row.pk, row.tenant_id, "")
    rcv.store(
        endpoint,
        target_uuid,
        request,
        body,
        source=InboundEvent.Source.ASANA_HANDSHAKE,
        status=InboundEvent.Status.PROCESSED,
        processed_at=now,
    )
    return HttpResponse(status=200, headers={SECRET_HEADER: secret})
