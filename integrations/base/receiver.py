"""The receive pipeline every inbound receiver (Asana webhooks, Acumatica push notifications) shares.

`Receiver.receive()` is the one place that decides what a delivery costs and how it is answered; a
vendor writes hooks, never its own pipeline:

    load_endpoint(uuid)      one read: the endpoint's ids, its one secret and the plain fields the
                             receiver needs (no other decryption, no vendor call)
    verify(ep, request, body)   raise a `BadCredential` when the delivery is not authentic
    accept(ep, request, body)   parse, store the raw event (one INSERT per event), enqueue, answer
    intercept(request, uuid, body)   optional: a request that is not a delivery (Asana's handshake)

Only what must be synchronous happens here (issue 17): the endpoint and its secret come from a
per-process cache (ENDPOINT_TTL = 10 s; a save of the endpoint's model clears it in this process, and
a failed verification re-reads once, so a new secret is accepted at once and an old one is refused
within 10 s everywhere), the
signature is checked, the event is stored by one INSERT in autocommit (the hook views are
non-atomic, so the row is committed when the INSERT returns) and the task is enqueued after it. A
broker that cannot be reached does not fail the delivery: the stored row is marked `received` and
the every-minute sweep (integrations/flows/inbound/events.py) enqueues it.

A delivery that does not authenticate (unknown endpoint, bad or missing secret/signature, a body over
the cap) is refused without a row: logged with a short excerpt, counted per source address
(base/refusals.py), and answered 429 once the address is a repeated offender. Authentic but
unreadable bodies are stored as `rejected`, with the body, for the operator. Vendors retry on 5xx
and give up on 4xx, so our own bugs stay 500.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse

from audit.models import InboundEvent
from audit.rows import RowInsert
from integrations.base.refusals import client_address, excerpt, refusals

log = logging.getLogger(__name__)

# Bookkeeping on the endpoint row (last event / heartbeat seen) is written at most this often per
# process and endpoint, never once per delivery (concurrent deliveries would queue on its row lock).
TOUCH_EVERY = timedelta(minutes=1)


class DeliveryRejected(Exception):
    status = 400
    verdict = InboundEvent.Verdict.NOT_APPLICABLE
    # False: the sender proved nothing (no endpoint, no valid credential): no row, only a count.
    authenticated = True

    def __init__(self, reason: str, *, verdict: str | None = None):
        super().__init__(reason)
        self.reason = reason
        if verdict is not None:
            self.verdict = verdict


class BodyTooLarge(DeliveryRejected):
    status = 413
    authenticated = False


class UnknownEndpoint(DeliveryRejected):
    status = 404
    authenticated = False


class BadCredential(DeliveryRejected):
    """Wrong or missing signature / shared secret."""

    status = 401
    authenticated = False


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


@dataclass
class Endpoint:
    """What a receiver needs about one endpoint, as read once and cached in this process."""

    pk: int
    tenant_id: int | None
    secret: str
    fields: dict[str, Any] = field(default_factory=dict)  # vendor-specific plain fields
    uuid: uuid.UUID | None = None  # the endpoint uuid it was found by
    loaded_at: float = field(default_factory=time.monotonic)
    touched: dict[str, float] = field(default_factory=dict)  # bookkeeping column -> monotonic time


def _event_conflict(quote) -> str:
    """A repeated dedupe key conflicts into nothing: no row, no error, no aborted transaction."""
    key = quote("dedupe_key")
    return f"ON CONFLICT ({quote('source')}, {key}) WHERE {key} IS NOT NULL DO NOTHING"


def _event_cursor(conn):
    """Django's cursor — on PostgreSQL with psycopg 3, one that binds the parameters on the server
    (Django's own ServerBindingCursor, wrapped as conn.cursor() wraps its cursors: errors
    translated, queries logged when they are): the client-side binding Django uses by default
    quotes each of the thirteen values into the SQL text in Python, the largest part of the INSERT's
    CPU on the receive path."""
    if conn.vendor != "postgresql" or _ServerBindingCursor is None:
        return conn.cursor()
    conn.close_if_health_check_failed()
    conn.ensure_connection()
    with conn.wrap_database_errors:
        if not conn.settings_dict["OPTIONS"].get("server_side_binding"):
            # Prepared on its first run on each connection, then only executed (~30 % of the
            # database's CPU per delivery). Only server-binding cursors prepare: Django's own
            # queries on this connection (ClientCursor) never do. Not while queries are logged
            # (DEBUG, tests): a prepared statement's logged text would be empty.
            prepare = settings.INGEST_PREPARED_INSERT and not conn.queries_logged
            conn.connection.prepare_threshold = 0 if prepare else None
        raw = _ServerBindingCursor(conn.connection)
    return conn.make_debug_cursor(raw) if conn.queries_logged else conn.make_cursor(raw)


try:
    from django.db.backends.postgresql.base import ServerBindingCursor as _ServerBindingCursor
except ImportError:  # no psycopg 3 (SQLite only, or psycopg2)
    _ServerBindingCursor = None

# The INSERT of one InboundEvent (audit/rows.py): `ON CONFLICT (source, dedupe_key) WHERE dedupe_key IS
# NOT NULL DO NOTHING RETURNING id` returns no row for a key stored before. InboundEvent has no save()
# override, no database-side default and nothing listening to its model signals; a test keeps it so.
_insert = RowInsert(InboundEvent, on_conflict=_event_conflict, cursor=_event_cursor)


def insert_event(**fields: Any) -> int | None:
    """One INSERT; the new row's id, or None when its dedupe key was stored before. A savepoint only
    inside an outer transaction (tests, a caller's atomic block), so that another failure (a foreign
    key) leaves the caller's transaction usable; in autocommit a failed INSERT spoils nothing."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return _insert(fields)
    return _insert(fields)


def store_once(**fields: Any) -> tuple[int, bool]:
    """(row id, is_new): a repeated dedupe key is stored as a duplicate pointing at the original."""
    row_id = insert_event(**fields)
    if row_id is not None:
        return row_id, True
    key = fields.pop("dedupe_key")
    same = InboundEvent.objects.filter(source=fields["source"], dedupe_key=key)
    original = same.values_list("pk", flat=True).first()
    fields.update(
        status=InboundEvent.Status.DUPLICATE,
        duplicate_of_id=original,
        status_reason=f"the same event was received before (#{original if original is not None else '?'})",
    )
    return insert_event(**fields), False


def dispatch(enqueue, event_id: int) -> bool:
    """Enqueue a stored event; a broker outage leaves it `received` for the sweep, never a 5xx (the row
    is durable; Asana deletes a webhook after 24 h of failures, Acumatica re-sends and duplicates)."""
    try:
        enqueue(event_id)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker error: the sweep retries within a minute
        log.warning("event #%s stored but not queued (%s); the sweep will queue it", event_id, exc)
        InboundEvent.objects.filter(pk=event_id, status=InboundEvent.Status.QUEUED).update(
            status=InboundEvent.Status.RECEIVED,
            status_reason=f"stored; the broker was unreachable ({type(exc).__name__}), the sweep queues it",
        )
        return False


class Receiver:
    """One inbound endpoint type. Subclasses set `source`, `endpoint_model` and the hooks."""

    source: ClassVar[str] = ""
    name: ClassVar[str] = "webhook"
    # How long a cached endpoint is trusted. Rows are also written with queryset updates (the
    # watchdog's registration steps), which send no signal: every process re-reads within this time.
    ENDPOINT_TTL: ClassVar[float] = 10.0
    clock = staticmethod(time.monotonic)

    def __init__(self, enqueue: Callable[[int], None] | None = None) -> None:
        """`enqueue(event_id)` queues the flow task that processes one stored event: the flows floor hands
        it over when it builds the receiver (integrations/flows/inbound/receivers.py), so this floor
        names no function above it."""
        self._cache: dict[uuid.UUID, Endpoint] = {}
        self._enqueue = enqueue

    def enqueue(self, event_id: int) -> None:
        if self._enqueue is None:
            raise RuntimeError(f"the {self.name} receiver was built without a queue to hand events to")
        self._enqueue(event_id)

    # ---- hooks ----------------------------------------------------------------------------------
    def load_endpoint(self, endpoint_uuid: uuid.UUID) -> Endpoint | None:
        raise NotImplementedError

    def verify(self, endpoint: Endpoint, request: HttpRequest, body: bytes) -> None:
        raise NotImplementedError

    def accept(self, endpoint: Endpoint, request: HttpRequest, body: bytes) -> HttpResponse:
        raise NotImplementedError

    def intercept(self, request: HttpRequest, endpoint_uuid: uuid.UUID, body: bytes) -> HttpResponse | None:
        return None

    def stored_headers(self, endpoint: Endpoint, request: HttpRequest) -> dict[str, str]:
        raise NotImplementedError

    # ---- the endpoint cache ---------------------------------------------------------------------
    def endpoint(self, endpoint_uuid: uuid.UUID, *, fresh: bool = False) -> Endpoint | None:
        cached = self._cache.get(endpoint_uuid)
        if cached is not None and not fresh and self.clock() - cached.loaded_at < self.ENDPOINT_TTL:
            return cached
        loaded = self.load_endpoint(endpoint_uuid)
        if loaded is None:
            self._cache.pop(endpoint_uuid, None)
            return None
        loaded.uuid = endpoint_uuid
        loaded.loaded_at = self.clock()
        if cached is not None:
            loaded.touched = cached.touched
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[endpoint_uuid] = loaded
        return loaded

    def cached(self, endpoint_uuid: uuid.UUID) -> bool:
        return endpoint_uuid in self._cache

    def invalidate(self, *_args: Any, **_kwargs: Any) -> None:
        """Signal receiver: the endpoint's model changed in this process."""
        self._cache.clear()

    def should_touch(self, endpoint: Endpoint, column: str) -> bool:
        """True at most once per TOUCH_EVERY per endpoint and column in this process."""
        now = self.clock()
        if now - endpoint.touched.get(column, -1e9) < TOUCH_EVERY.total_seconds():
            return False
        endpoint.touched[column] = now
        return True

    # ---- the pipeline ---------------------------------------------------------------------------
    def receive(self, request: HttpRequest, endpoint_uuid: uuid.UUID) -> HttpResponse:
        if request.method != "POST":
            return HttpResponse(status=405, headers={"Allow": "POST"})
        # CONN_HEALTH_CHECKS would spend a `SELECT 1` round trip on every delivery. A connection that
        # died since its last use fails the INSERT instead: a 500 the vendor retries, and Django drops
        # the broken connection when the request ends.
        connection.health_check_done = True
        address = client_address(request)
        slowed = refusals.blocked(address)
        if slowed and not self.cached(endpoint_uuid):
            return self._slow_down(address, endpoint_uuid)
        endpoint: Endpoint | None = None
        body = b""
        try:
            body = read_capped_body(request)
            answer = self.intercept(request, endpoint_uuid, body)
            if answer is not None:
                return answer
            endpoint = self.endpoint(endpoint_uuid)
            if endpoint is None:
                raise UnknownEndpoint(f"no {self.name} endpoint has this uuid")
            try:
                self.verify(endpoint, request, body)
            except BadCredential:
                if slowed:
                    raise
                # A stale cache (rotated secret, a registration confirmed elsewhere) gets one re-read.
                endpoint = self.endpoint(endpoint_uuid, fresh=True)
                if endpoint is None:
                    raise UnknownEndpoint(f"no {self.name} endpoint has this uuid") from None
                self.verify(endpoint, request, body)
            return self.accept(endpoint, request, body)
        except DeliveryRejected as exc:
            if not exc.authenticated:
                if slowed:
                    return self._slow_down(address, endpoint_uuid)
                return self.refuse(request, address, endpoint_uuid, body, exc)
            log.warning("%s %s rejected with %s: %s", self.name, endpoint_uuid, exc.status, exc.reason)
            self.store(
                endpoint,
                endpoint_uuid,
                request,
                body,
                signature=exc.verdict,
                status=InboundEvent.Status.REJECTED,
                status_reason=exc.reason,
            )
            return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")

    def refuse(
        self, request: HttpRequest, address: str, endpoint_uuid, body: bytes, exc: DeliveryRejected
    ) -> HttpResponse:
        n = refusals.count(address)
        log.warning(
            "%s %s refused with %s for %s (%s refusal(s) from it this minute): %s; body starts %r",
            self.name,
            endpoint_uuid,
            exc.status,
            address,
            n,
            exc.reason,
            excerpt(body),
        )
        return HttpResponse(exc.reason, status=exc.status, content_type="text/plain")

    def _slow_down(self, address: str, endpoint_uuid) -> HttpResponse:
        refusals.count(address)
        log.info("%s %s: %s is slowed after repeated refusals", self.name, endpoint_uuid, address)
        return HttpResponse(
            "too many refused deliveries from this address",
            status=429,
            content_type="text/plain",
            headers={"Retry-After": str(refusals.retry_after(address))},
        )

    def store(
        self, endpoint: Endpoint | None, endpoint_uuid, request: HttpRequest, body: bytes, **fields: Any
    ) -> InboundEvent:
        fields.setdefault("source", self.source)
        return InboundEvent.objects.create(
            tenant_id=endpoint.tenant_id if endpoint else None,
            endpoint_uuid=endpoint_uuid,
            headers=self.stored_headers(endpoint, request) if endpoint else {},
            raw_body=body,
            **fields,
        )
