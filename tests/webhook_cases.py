"""The security suite every inbound webhook view inherits (Asana webhooks, Acumatica push, …).

Each case posts through Django's test client and asserts the *effect*: the stored InboundEvent (status,
signature verdict, body kept or not) and whether a task was queued — never only the status code. A
delivery that does not authenticate is never stored: it is counted against its address (issue 17).

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
    receiver() -> Receiver              the endpoint's receiver (base/receiver.py)
    source                              the InboundEvent.Source of its rows
    bad_signature_status                401 unless the vendor's convention differs
"""

from __future__ import annotations

import json

from audit.models import InboundEvent
from integrations.base.refusals import refusals


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

    def assert_refused(self, response, status: int, refusals_before: int = 0) -> None:
        """Refused without a row (the sender proved nothing), counted against its address."""
        assert response.status_code == status
        assert not self.rows().exists()
        assert self.queued() == []
        assert refusals.seen("127.0.0.1") == refusals_before + 1

    def test_missing_signature_is_refused_counted_and_not_stored(self, client, endpoint_setup):
        body = self.event_body(1)
        response = self.post(client, body, self.unsigned_headers(body))
        self.assert_refused(response, self.bad_signature_status)

    def test_bad_signature_is_refused_counted_and_not_stored(self, client, endpoint_setup):
        body = self.event_body(1)
        response = self.post(client, body, self.bad_headers(body))
        self.assert_refused(response, self.bad_signature_status)

    def test_rotated_secret_refuses_the_old_one_and_accepts_the_new(self, client, endpoint_setup):
        body = self.event_body(1)
        old_headers = self.sign(body)
        self.rotate_secret()
        assert self.post(client, body, old_headers).status_code == self.bad_signature_status
        assert self.post(client, body, self.sign(body)).status_code == 200
        assert [r.status for r in self.rows()] == [InboundEvent.Status.QUEUED]
        assert len(self.queued()) == 1

    def test_a_cached_endpoint_takes_a_new_secret_at_once_and_drops_the_old_after_its_ttl(
        self, client, endpoint_setup, monkeypatch
    ):
        now = [1000.0]
        monkeypatch.setattr(self.receiver(), "clock", lambda: now[0])
        first, second, third = self.event_body(1), self.event_body(2), self.event_body(3)
        old_third = self.sign(third)
        assert self.post(client, first, self.sign(first)).status_code == 200  # now cached
        self.rotate_secret()
        assert self.post(client, second, self.sign(second)).status_code == 200  # re-read on mismatch
        now[0] += self.receiver().ENDPOINT_TTL + 1
        assert self.post(client, third, old_third).status_code == self.bad_signature_status
        assert len(self.queued()) == 2

    def test_repeated_refusals_from_one_address_are_slowed_and_valid_deliveries_still_pass(
        self, client, endpoint_setup, settings
    ):
        settings.WEBHOOK_REFUSALS_PER_MINUTE = 3
        body = self.event_body(1)
        assert self.post(client, body, self.sign(body)).status_code == 200  # cached endpoint
        codes = [self.post(client, body, self.bad_headers(body)).status_code for _ in range(5)]
        assert codes == [self.bad_signature_status] * 3 + [429, 429]
        unknown = client.post(
            self.url().replace(
                self.url().rstrip("/").rsplit("/", 1)[1], "00000000-0000-4000-8000-00000000abcd"
            ),
            data=body,
            content_type="application/json",
        )
        assert unknown.status_code == 429 and int(unknown.headers["Retry-After"]) >= 1
        body2 = self.event_body(2)
        assert self.post(client, body2, self.sign(body2)).status_code == 200  # authentic: still served
        assert [r.status for r in self.rows()] == [InboundEvent.Status.QUEUED] * 2

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
        response = self.post(client, body, self.unsigned_headers(body))
        self.assert_refused(response, self.bad_signature_status)

    def test_oversize_body_is_refused_before_reading_and_not_stored(self, client, endpoint_setup, settings):
        settings.WEBHOOK_MAX_BODY_BYTES = 512
        body = json.dumps({"events": [], "padding": "x" * 2048}).encode()
        response = self.post(client, body, self.sign(body))
        self.assert_refused(response, 413)

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
