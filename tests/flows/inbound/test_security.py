"""The shared webhook security suite on the Asana view, plus Asana's handshake rules (reference §6.2–6.5)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import InboundEvent
from integrations.asana import webhooks
from integrations.base.refusals import refusals
from integrations.flows.common import task_events
from integrations.flows.inbound import receivers
from integrations.models import AsanaWebhook
from tests.webhook_cases import WebhookSecurityCases

from .harness import DEMO, World, world  # noqa: F401

SECRET = "a" * 64


class TestAsanaWebhookSecurity(WebhookSecurityCases):
    source = InboundEvent.Source.ASANA_WEBHOOK

    @pytest.fixture
    def endpoint_setup(self, world: World, monkeypatch):  # noqa: F811
        self.hook = AsanaWebhook.objects.create(
            tenant=world.tenant,
            resource_gid=DEMO["ap_project"],
            webhook_gid="1300000000000001",
            secret=SECRET,
            state=AsanaWebhook.State.ACTIVE,
        )
        self._queued: list[int] = []
        monkeypatch.setattr(task_events, "enqueue_asana_event", self._queued.append)
        return self.hook

    def url(self) -> str:
        return f"/hooks/asana/{self.hook.target_uuid}/"

    def sign(self, body: bytes) -> dict[str, str]:
        self.hook.refresh_from_db()
        return {"X-Hook-Signature": webhooks.sign(self.hook.secret, body)}

    def bad_headers(self, body: bytes) -> dict[str, str]:
        return {"X-Hook-Signature": webhooks.sign("not-the-secret", body)}

    def unsigned_headers(self, body: bytes) -> dict[str, str]:
        return {}

    def rotate_secret(self) -> None:
        # Asana secrets never rotate in place; re-registration gives the row a new one.
        AsanaWebhook.objects.filter(pk=self.hook.pk).update(secret="b" * 64)

    def event_body(self, n: int) -> bytes:
        return json.dumps(
            {
                "events": [
                    {
                        "user": {"gid": DEMO["users"]["alice"], "resource_type": "user"},
                        "created_at": f"2026-05-01T10:00:0{n}.000Z",
                        "action": "changed",
                        "resource": {
                            "gid": "1300000000000900",
                            "resource_type": "task",
                            "resource_subtype": "default_task",
                        },
                        "parent": None,
                        "change": {"field": "completed", "action": "changed"},
                    }
                ]
            }
        ).encode()

    def heartbeat_body(self) -> bytes:
        return b'{"events": []}'

    def queued(self) -> list[int]:
        return list(self._queued)

    def receiver(self):
        return receivers.asana

    # ---- Asana specifics -----------------------------------------------------------------------------
    def test_heartbeat_updates_last_heartbeat(self, client, endpoint_setup):
        body = self.heartbeat_body()
        self.post(client, body, self.sign(body))
        self.hook.refresh_from_db()
        assert self.hook.last_heartbeat_at is not None

    def test_handshake_without_pending_registration_is_refused_and_not_stored(self, client, endpoint_setup):
        response = client.post(
            self.url(),
            data=b"",
            content_type="application/json",
            headers={"X-Hook-Secret": "attacker-secret-123456"},
        )
        assert response.status_code == 403
        assert "X-Hook-Secret" not in response.headers
        assert not InboundEvent.objects.exists()
        assert refusals.seen("127.0.0.1") == 1
        self.hook.refresh_from_db()
        assert self.hook.secret == SECRET  # not taken over

    def test_handshake_while_pending_is_echoed(self, client, endpoint_setup):
        AsanaWebhook.objects.filter(pk=self.hook.pk).update(  # as register() leaves it
            state=AsanaWebhook.State.PENDING, pending_since=timezone.now(), secret=""
        )
        response = client.post(
            self.url(),
            data=b"",
            content_type="application/json",
            headers={"X-Hook-Secret": "fresh-secret-0123456789"},
        )
        assert response.status_code == 200
        assert response.headers["X-Hook-Secret"] == "fresh-secret-0123456789"
        assert InboundEvent.objects.get(source=InboundEvent.Source.ASANA_HANDSHAKE).status == "processed"

    def test_heartbeat_while_pending_is_200_but_events_are_not(self, client, endpoint_setup):
        """Issue 19: Asana sends an empty heartbeat at the handshake (reference §6.5), possibly before
        our create call returned. Signed with the handshake's secret it gets a 200 and is recorded;
        it confirms nothing, and an event signed with that secret is still refused until the 201."""
        pending_since = timezone.now()
        AsanaWebhook.objects.filter(pk=self.hook.pk).update(  # the handshake was answered, 201 not yet
            state=AsanaWebhook.State.PENDING, pending_since=pending_since, last_heartbeat_at=None
        )
        heartbeat = self.heartbeat_body()
        response = self.post(client, heartbeat, {"X-Hook-Signature": webhooks.sign(SECRET, heartbeat)})
        assert response.status_code == 200
        row = InboundEvent.objects.get(source=self.source)
        assert row.status == "processed" and row.status_reason == "heartbeat (registration pending)"
        self.hook.refresh_from_db()
        assert self.hook.state == AsanaWebhook.State.PENDING and self.hook.last_heartbeat_at is None
        assert refusals.seen("127.0.0.1") == 0

        forged = self.post(
            client, heartbeat, {"X-Hook-Signature": webhooks.sign("not-the-secret", heartbeat)}
        )
        event = self.event_body(1)
        early = self.post(client, event, {"X-Hook-Signature": webhooks.sign(SECRET, event)})
        assert forged.status_code == 401 and early.status_code == 401
        assert InboundEvent.objects.filter(source=self.source).count() == 1 and self.queued() == []

    def test_handshake_after_the_window_is_refused(self, client, endpoint_setup):
        AsanaWebhook.objects.filter(pk=self.hook.pk).update(
            state=AsanaWebhook.State.PENDING, pending_since=timezone.now() - timedelta(hours=1)
        )
        response = client.post(
            self.url(),
            data=b"",
            content_type="application/json",
            headers={"X-Hook-Secret": "late-secret-0123456789"},
        )
        assert response.status_code == 403

    def test_unknown_uuid_is_404_counted_and_not_stored(self, client, endpoint_setup):
        body = self.event_body(1)
        response = client.post(
            "/hooks/asana/00000000-0000-4000-8000-000000000000/",
            data=body,
            content_type="application/json",
            headers=self.sign(body),
        )
        assert response.status_code == 404
        assert not InboundEvent.objects.exists()
        assert refusals.seen("127.0.0.1") == 1
        assert self._queued == []

    def test_unknown_event_type_is_200_and_ignored(self, client, endpoint_setup):
        body = json.dumps(
            {
                "events": [
                    {
                        "user": None,
                        "created_at": "2026-05-01T10:00:00.000Z",
                        "action": "added",
                        "resource": {
                            "gid": "1300000000000901",
                            "resource_type": "story",
                            "resource_subtype": "comment_added",
                        },
                        "parent": {"gid": "1300000000000900", "resource_type": "task"},
                    }
                ]
            }
        ).encode()
        assert self.post(client, body, self.sign(body)).status_code == 200
        row = self.rows().get()
        assert row.status == InboundEvent.Status.IGNORED and "story" in row.status_reason
        assert self._queued == []

    def test_connector_users_own_changes_are_ignored(self, client, endpoint_setup):
        event = json.loads(self.event_body(1))
        event["events"][0]["user"]["gid"] = DEMO["connector_user"]
        body = json.dumps(event).encode()
        assert self.post(client, body, self.sign(body)).status_code == 200
        assert self.rows().get().status == InboundEvent.Status.IGNORED
        assert self._queued == []

    def test_a_batch_is_stored_per_event_and_a_redelivered_overlap_is_deduplicated(
        self, client, endpoint_setup
    ):
        one, two = (json.loads(self.event_body(n))["events"][0] for n in (1, 2))
        first = json.dumps({"events": [one, two]}).encode()
        second = json.dumps({"events": [two]}).encode()
        self.post(client, first, self.sign(first))
        self.post(client, second, self.sign(second))
        statuses = [r.status for r in self.rows()]
        assert statuses == ["queued", "queued", "duplicate"]
        assert len(self._queued) == 2

    def test_signature_is_over_raw_bytes_not_reserialised_json(self, client, endpoint_setup):
        body = b'{"events":[],   "x": 1}'
        assert self.post(client, body, self.sign(body)).status_code == 200
        reformatted = json.dumps(json.loads(body)).encode()
        assert self.post(client, reformatted, self.sign(body)).status_code == 401
