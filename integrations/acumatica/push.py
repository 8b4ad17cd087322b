"""Acumatica push notifications (SM302000, reference/acumatica.md §7): the receiving view and parsing.

The view does four things only (ARCHITECTURE §5): verify, persist the raw notification, enqueue a
task with its id, answer — in milliseconds, never calling a vendor:

    body over WEBHOOK_MAX_BODY_BYTES             413  (nothing of the body is stored)
    unknown endpoint uuid                        404  stored as rejected
    missing / wrong shared-secret header         401  stored as rejected with the verdict (constant-time
                                                      compare; no HMAC exists for pushes, §7.2)
    body not JSON / no `Query` or `Id`           400  stored as rejected
    (Query, Id) seen before                      200  stored as duplicate, nothing queued (§7.3: the pair
                                                      identifies the transaction; Acumatica re-sends on error)
    otherwise                                    200  stored as queued, `process_push_event(id)` enqueued
Acumatica re-sends a notification when we answer an error (§7.4), so nothing after acceptance may 5xx.
The rows are hints: the worker re-reads every document by key; a key only in `Deleted` means deleted
OR no longer in the query's result — the re-read tells which. Polling stays on as catch-up.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse

from audit.models import InboundEvent
from integrations.acumatica.push_rows import read_rows, unreadable_reason
from integrations.base.redaction import redact_headers
from integrations.base.webhooks import (
    BadCredential,
    DeliveryRejected,
    UnknownEndpoint,
    read_capped_body,
)
from integrations.models import AcumaticaConnection

log = logging.getLogger(__name__)

TASK = "integrations.tasks.documents.process_push_event"


class BadSecret(BadCredential):
    pass


def enqueue(event_id: int) -> None:
    from django_q.tasks import async_task

    async_task(TASK, event_id, task_name=f"acumatica-push-{event_id}")


def verify_secret(connection: AcumaticaConnection, request: HttpRequest) -> None:
    """The configured header must carry the configured value (compared in constant time)."""
    provided = request.headers.get(connection.push_header_name)
    if not connection.push_secret:
        raise BadSecret(
            "no push secret is configured for this connection", verdict=InboundEvent.Verdict.MISSING
        )
    if not provided:
        raise BadSecret(
            f"header {connection.push_header_name} is missing", verdict=InboundEvent.Verdict.MISSING
        )
    if not hmac.compare_digest(provided.encode(), connection.push_secret.encode()):
        raise BadSecret(
            f"header {connection.push_header_name} is wrong", verdict=InboundEvent.Verdict.INVALID
        )


def parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than the parser goes
        raise DeliveryRejected(f"body is not JSON: {exc}", verdict=InboundEvent.Verdict.VALID) from exc
    if not isinstance(payload, dict):
        raise DeliveryRejected("body is not a JSON object", verdict=InboundEvent.Verdict.VALID)
    missing = [k for k in ("Query", "Id") if not payload.get(k)]
    if missing:
        raise DeliveryRejected(
            f"notification has no {' or '.join(missing)}", verdict=InboundEvent.Verdict.VALID
        )
    return payload


def document_keys(payload: dict[str, Any], flow_kind: str) -> list[tuple[str, str]]:
    """(Type display value, number) of every row in `Inserted` and `Deleted` that names a document of
    this flow's kind, read in every spelling a generic inquiry uses (push_rows.PushVocabulary)."""
    return read_rows(payload).for_kind(flow_kind)


def _headers(request: HttpRequest, connection: AcumaticaConnection | None) -> dict[str, str]:
    secret_header = (connection.push_header_name if connection else "").lower()
    kept = {
        k: ("[redacted]" if k.lower() == secret_header else v)
        for k, v in request.headers.items()
        if k.lower() != "cookie"
    }
    return redact_headers(kept, extra_sensitive=(secret_header,) if secret_header else ())


def receive(request: HttpRequest, push_uuid: uuid.UUID) -> HttpResponse:
    """POST /hooks/acumatica/<uuid>/ — one push notification for one Acumatica connection."""
    if request.method != "POST":
        return HttpResponse(status=405, headers={"Allow": "POST"})
    connection: AcumaticaConnection | None = None
    body = b""
    try:
        body = read_capped_body(request)
        connection = AcumaticaConnection.objects.select_related("tenant").filter(push_uuid=push_uuid).first()
        if connection is None:
            raise UnknownEndpoint("no Acumatica connection has this push uuid")
        verify_secret(connection, request)
        payload = parse(body)
    except DeliveryRejected as exc:
        log.warning("acumatica push %s rejected with %s: %s", push_uuid, exc.status, exc.reason)
        InboundEvent.objects.create(
            tenant=connection.tenant if connection else None,
            source=InboundEvent.Source.ACUMATICA_PUSH,
            endpoint_uuid=push_uuid,
            headers=_headers(request, connection),
            raw_body=body if exc.store_body else b"",
            signature=exc.verdict,
            status=InboundEvent.Status.REJECTED,
            status_reason=exc.reason,
        )
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")

    fields = dict(
        tenant=connection.tenant,
        source=InboundEvent.Source.ACUMATICA_PUSH,
        endpoint_uuid=push_uuid,
        headers=_headers(request, connection),
        raw_body=body,
        signature=InboundEvent.Verdict.VALID,
    )
    key = f"{connection.pk}|{payload['Query']}|{payload['Id']}"[:300]
    reading = read_rows(payload)
    status, reason = InboundEvent.Status.QUEUED, ""
    if reading.unreadable:
        reason = unreadable_reason(reading)
        log.warning("acumatica push %s: %s", push_uuid, reason)
        if not reading.readable_count:
            status = InboundEvent.Status.UNREADABLE
    try:
        with transaction.atomic():
            event = InboundEvent.objects.create(**fields, dedupe_key=key, status=status, status_reason=reason)
    except IntegrityError:
        original = InboundEvent.objects.filter(source=fields["source"], dedupe_key=key).first()
        InboundEvent.objects.create(
            **fields,
            status=InboundEvent.Status.DUPLICATE,
            duplicate_of=original,
            status_reason=f"same Query and Id as event #{getattr(original, 'pk', '?')}",
        )
        return JsonResponse({"status": "duplicate"})
    if status == InboundEvent.Status.UNREADABLE:
        # 200: Acumatica would re-send the same rows on an error (§7.4); the operator sees it instead.
        return JsonResponse({"status": "unreadable", "event": event.pk})
    enqueue(event.pk)
    return JsonResponse({"status": "queued", "event": event.pk})
