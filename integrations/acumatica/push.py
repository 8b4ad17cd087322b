"""Acumatica push notifications (SM302000, reference/acumatica.md §7): the receiving view and parsing.

The view (base/receiver.Receiver with the hooks below) does four things only (ARCHITECTURE §5):
verify, persist the raw notification, enqueue a task with its id, answer — in milliseconds, never
calling a vendor:

    body over WEBHOOK_MAX_BODY_BYTES             413  no row: refused, logged, counted (base/refusals.py)
    unknown endpoint uuid                        404  no row: refused, logged, counted
    missing / wrong shared-secret header         401  no row (constant-time compare; no HMAC exists for
                                                      pushes, §7.2); 429 for a repeated offender
    body not JSON / no `Query` or `Id`           400  stored as rejected (authentic: it had the secret)
    no row names a document in any spelling      200  stored as unreadable, counted on the dashboard
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

from django.http import HttpRequest, HttpResponse, JsonResponse

from audit.models import InboundEvent
from integrations.acumatica.push_rows import read_rows, unreadable_reason
from integrations.base.receiver import (
    BadCredential,
    DeliveryRejected,
    Endpoint,
    Receiver,
    dispatch,
    store_once,
)
from integrations.base.redaction import redact_headers
from integrations.models import AcumaticaConnection

log = logging.getLogger(__name__)


class BadSecret(BadCredential):
    pass


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


class PushReceiver(Receiver):
    """One read finds the connection: its ids, the push header's name and the push secret (the one
    decryption); the other credentials of the connection are never loaded here."""

    source = InboundEvent.Source.ACUMATICA_PUSH
    name = "acumatica push"

    def load_endpoint(self, endpoint_uuid: uuid.UUID) -> Endpoint | None:
        row = (
            AcumaticaConnection.objects.filter(push_uuid=endpoint_uuid)
            .values_list("pk", "tenant_id", "push_secret", "push_header_name")
            .first()
        )
        if row is None:
            return None
        pk, tenant_id, secret, header = row
        return Endpoint(pk, tenant_id, secret or "", {"header": header})

    def verify(self, endpoint: Endpoint, request: HttpRequest, body: bytes) -> None:
        """The configured header must carry the configured value (constant time; no HMAC exists, §7.2)."""
        header = endpoint.fields["header"]
        provided = request.headers.get(header)
        if not endpoint.secret:
            raise BadSecret(
                "no push secret is configured for this connection", verdict=InboundEvent.Verdict.MISSING
            )
        if not provided:
            raise BadSecret(f"header {header} is missing", verdict=InboundEvent.Verdict.MISSING)
        if not hmac.compare_digest(provided.encode(), endpoint.secret.encode()):
            raise BadSecret(f"header {header} is wrong", verdict=InboundEvent.Verdict.INVALID)

    def stored_headers(self, endpoint: Endpoint | None, request: HttpRequest) -> dict[str, str]:
        secret_header = (endpoint.fields.get("header", "") if endpoint else "").lower()
        kept = {
            k: ("[redacted]" if k.lower() == secret_header else v)
            for k, v in request.headers.items()
            if k.lower() != "cookie"
        }
        return redact_headers(kept, extra_sensitive=(secret_header,) if secret_header else ())

    def accept(self, endpoint: Endpoint, request: HttpRequest, body: bytes) -> HttpResponse:
        payload = parse(body)
        reading = read_rows(payload)
        status, reason = InboundEvent.Status.QUEUED, ""
        if reading.unreadable:
            reason = unreadable_reason(reading)
            log.warning("acumatica push %s: %s", endpoint.uuid, reason)
            if not reading.readable_count:
                status = InboundEvent.Status.UNREADABLE
        event_id, new = store_once(
            tenant_id=endpoint.tenant_id,
            source=self.source,
            endpoint_uuid=endpoint.uuid,
            headers=self.stored_headers(endpoint, request),
            raw_body=body,
            signature=InboundEvent.Verdict.VALID,
            # §7.3: (Query, Id) identifies the transaction; Acumatica re-sends on error (§7.4).
            dedupe_key=f"{endpoint.pk}|{payload['Query']}|{payload['Id']}"[:300],
            status=status,
            status_reason=reason,
        )
        if not new:
            return JsonResponse({"status": "duplicate"})
        if status == InboundEvent.Status.UNREADABLE:
            # 200: Acumatica would re-send the same rows on an error (§7.4); the operator sees it instead.
            return JsonResponse({"status": "unreadable", "event": event_id})
        dispatch(self.enqueue, event_id)
        return JsonResponse({"status": "queued", "event": event_id})
