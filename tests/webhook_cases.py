"""The security suite every inbound webhook view inherits (Asana webhooks, Acumatica push, …).

Each case posts through Django's test client and asserts the *effect*: the stored InboundEvent (status,
signature verdict, body kept or not) and whether a task was queued — never only the status code.

A subclass provides, as a pytest fixture named `endpoint_setup` (it runs before every case), the
endpoint under test, and these methods:

    url() -> str                        the endpoint path
    sign(body) -> dict[str, str]        headers that authenticate `body` (the current secret)
    bad_headers(body) -> dict           headers with a wrong signature / secret
    unsigned_headers(body) -> dict      headers with no signature / secret at all
    rotate_secret() -> None             replace the secret; `sign` uses the new one afterwards
    event_body(n) -> bytes              a valid delivery, distinct for each n
    heartbeat_body() -> bytes | None    an "I am alive" delivery (None: the vendor has none)
    queued() -> list                    what the endpoint enqueued so far (ids)
    source                              the InboundEvent.Source of its rows
    bad_signature_status                401 unless the vendor's convention differs
"""

from __future__ import annotations

import json

from audit.models import InboundEvent


class WebhookSecurityCases:
    source: str = ""
    bad_signature_status = 401

    # ---- helpers ---------------------------------------------------------------------------------
    def post(self, client, body: bytes, headers: dict[str, str], content_type: str = "application/json"):
        return client.post(self.url(), data=body, content_type=content_type, headers=headers)

    def rows(self):
        return InboundEvent.objects.filter(source=self.source).order_by("pk")

    # ---- the cases -------------------------------------------------------------------------------
    def test_valid_delivery_is_stored_and_queued(self, client, endpoint_setup):
        body = self.event_body(1)
        response = self.post(client, body, self.sign(body))
        assert response.status_code == 200
        rows = list(self.rows())
        assert len(rows) == 1
        assert rows[0].status == InboundEvent.Status.QUEUED
        assert rows[0].signature == InboundEvent.Verdict.VALID
        assert rows[0].dedupe_key
        assert self.queued() == [rows[0].pk]

    def test_missing_signature_is_refused_stored_and_not_queued(self, client, endpoint_setup):
        body = self.event_body(1)
        response = self.post(client, body, self.unsigned_headers(body))
        assert response.status_code == self.bad_signature_status
        row = self.rows().get()
        assert row.status == InboundEvent.Status.REJECTED
        assert row.signature == InboundEvent.Verdict.MISSING
        assert bytes(row.raw_body) == body  # kept for forensics
        assert self.queued() == []

    def test_bad_signature_is_refused_stored_and_not_queued(self, client, endpoint_setup):
        body = self.event_body(1)
        response = self.post(client, body, self.bad_headers(body))
        assert response.status_code == self.bad_signature_status
        row = self.rows().get()
        assert (row.status, row.signature) == (InboundEvent.Status.REJECTED, InboundEvent.Verdict.INVALID)
        assert not row.dedupe_key
        assert self.queued() == []

    def test_rotated_secret_refuses_the_old_one_and_accepts_the_new(self, client, endpoint_setup):
        body = self.event_body(1)
        old_headers = self.sign(body)
        self.rotate_secret()
        assert self.post(client, body, old_headers).status_code == self.bad_signature_status
        assert self.post(client, body, self.sign(body)).status_code == 200
        statuses = [r.status for r in self.rows()]
        assert statuses == [InboundEvent.Status.REJECTED, InboundEvent.Status.QUEUED]
        assert len(self.queued()) == 1

    def test_duplicate_delivery_is_stored_once_as_new_and_queued_once(self, client, endpoint_setup):
        body = self.event_body(1)
        first = self.post(client, body, self.sign(body))
        second = self.post(client, body, self.sign(body))
        assert (first.status_code, second.status_code) == (200, 200)
        original, duplicate = list(self.rows())
        assert original.status == InboundEvent.Status.QUEUED
        assert duplicate.status == InboundEvent.Status.DUPLICATE
        assert duplicate.duplicate_of_id == original.pk
        assert self.queued() == [original.pk]

    def test_heartbeat_is_answered_recorded_and_not_queued(self, client, endpoint_setup):
        body = self.heartbeat_body()
        if body is None:
            return
        response = self.post(client, body, self.sign(body))
        assert response.status_code == 200
        row = self.rows().get()
        assert row.status == InboundEvent.Status.PROCESSED
        assert row.signature == InboundEvent.Verdict.VALID
        assert self.queued() == []

    def test_unsigned_heartbeat_is_refused(self, client, endpoint_setup):
        body = self.heartbeat_body()
        if body is None:
            return
        assert self.post(client, body, self.unsigned_headers(body)).status_code == self.bad_signature_status
        assert self.rows().get().status == InboundEvent.Status.REJECTED

    def test_oversize_body_is_refused_before_reading_and_not_stored(self, client, endpoint_setup, settings):
        settings.WEBHOOK_MAX_BODY_BYTES = 512
        body = json.dumps({"events": [], "padding": "x" * 2048}).encode()
        response = self.post(client, body, self.sign(body))
        assert response.status_code == 413
        row = self.rows().get()
        assert row.status == InboundEvent.Status.REJECTED
        assert bytes(row.raw_body) == b""  # the body itself is never stored
        assert self.queued() == []

    def test_non_json_body_is_refused_stored_and_not_queued(self, client, endpoint_setup):
        body = b"<html>not json</html>"
        response = self.post(client, body, self.sign(body), content_type="text/html")
        assert response.status_code == 400
        row = self.rows().get()
        assert row.status == InboundEvent.Status.REJECTED
        assert row.signature == InboundEvent.Verdict.VALID  # authentic, just unreadable
        assert bytes(row.raw_body) == body
        assert self.queued() == []

    def test_secrets_never_reach_the_stored_headers(self, client, endpoint_setup):
        body = self.event_body(1)
        headers = self.sign(body)
        self.post(client, body, headers)
        stored = json.dumps(self.rows().get().headers)
        for value in headers.values():
            if len(value) >= 8:
                assert value not in stored

    def test_get_is_not_allowed(self, client, endpoint_setup):
        assert client.get(self.url()).status_code == 405
        assert not self.rows().exists()
