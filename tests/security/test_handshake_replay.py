"""A handshake cannot capture an Asana webhook (reference/asana.md §6.2 "first-writer takeover").

Asana sends `X-Hook-Secret` once, on the first POST to the target while our `POST /webhooks` is open.
Anyone who learns the target URL can POST a handshake too. Whatever they send — a replay after the
registration completed, a replay to another endpoint's uuid, a second handshake inside the window
(with or without the secret in Asana's 201 body), or a forged one that beats Asana's — the stored
secret stays Asana's (or is dropped), and deliveries the attacker signs are refused and queue nothing.
The sandbox performs the real handshake through Django's test client (tests/flows/inbound/harness).
"""

# ruff: noqa: F811  (the `world` fixture is imported by name)
from __future__ import annotations

import json

import pytest

from audit.models import InboundEvent
from integrations.asana import webhooks
from integrations.asana.client import AsanaClient
from integrations.asana.shapes import CreatedWebhook
from integrations.base.refusals import refusals
from integrations.flows.inbound import watchdog
from integrations.models import AsanaWebhook
from tests.flows.inbound.harness import DEMO, World, world  # noqa: F401

ATTACKER_SECRET = "attacker-chosen-secret-00000000000000000000"


def task_event(n: int = 1) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "user": {"gid": DEMO["users"]["alice"], "resource_type": "user"},
                    "created_at": f"2026-05-01T10:00:0{n}.000Z",
                    "action": "changed",
                    "resource": {"gid": "1300000000000900", "resource_type": "task"},
                    "parent": None,
                    "change": {"field": "completed", "action": "changed"},
                }
            ]
        }
    ).encode()


def post(client, hook: AsanaWebhook, body: bytes, headers: dict[str, str]):
    return client.post(
        f"/hooks/asana/{hook.target_uuid}/", data=body, content_type="application/json", headers=headers
    )


def handshake(client, hook: AsanaWebhook, secret: str):
    return post(client, hook, b"", {"X-Hook-Secret": secret})


def signed_by(secret: str, body: bytes) -> dict[str, str]:
    return {"X-Hook-Signature": webhooks.sign(secret, body)}


def assert_attacker_cannot_deliver(client, hook: AsanaWebhook) -> None:
    body = task_event(7)
    before = InboundEvent.objects.count()
    refused = refusals.seen("127.0.0.1")
    response = post(client, hook, body, signed_by(ATTACKER_SECRET, body))
    assert response.status_code == 401
    assert InboundEvent.objects.count() == before  # refused without a row, counted
    assert refusals.seen("127.0.0.1") == refused + 1


@pytest.fixture
def registered(world: World) -> AsanaWebhook:
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert [r.action for r in results] == ["registered"]
    return AsanaWebhook.objects.get()


def test_a_replayed_handshake_after_registration_neither_replaces_the_secret_nor_signs(
    client,
    world: World,
    registered: AsanaWebhook,
):
    asana_secret = world.asana.webhooks[registered.webhook_gid]["secret"]
    for replayed in (asana_secret, ATTACKER_SECRET):
        response = handshake(client, registered, replayed)
        assert response.status_code == 403
        assert "X-Hook-Secret" not in response.headers
    registered.refresh_from_db()
    assert (registered.secret, registered.state) == (asana_secret, AsanaWebhook.State.ACTIVE)
    assert_attacker_cannot_deliver(client, registered)
    # Asana's own signed deliveries still go through (the property above is not a dead endpoint).
    body = task_event(1)
    assert post(client, registered, body, signed_by(asana_secret, body)).status_code == 200
    accepted = InboundEvent.objects.filter(source=InboundEvent.Source.ASANA_WEBHOOK, signature="valid")
    assert accepted.exclude(status=InboundEvent.Status.REJECTED).count() == 1  # queued, then processed


def test_a_handshake_replayed_to_another_endpoints_uuid_is_refused(
    client,
    world: World,
    registered: AsanaWebhook,
):
    other = AsanaWebhook.objects.create(
        tenant=world.tenant,
        resource_gid=DEMO["pr_project"],
        webhook_gid="1300000000000077",
        secret="other-endpoint-secret-" + "9" * 40,
        state=AsanaWebhook.State.ACTIVE,
    )
    asana_secret = registered.secret
    assert handshake(client, other, asana_secret).status_code == 403
    assert handshake(client, other, ATTACKER_SECRET).status_code == 403
    other.refresh_from_db()
    registered.refresh_from_db()
    assert other.secret == "other-endpoint-secret-" + "9" * 40
    assert registered.secret == asana_secret
    assert_attacker_cannot_deliver(client, other)


@pytest.mark.parametrize("secret_in_201_body", [True, False])
def test_a_second_handshake_inside_the_window_is_refused(
    client,
    world: World,
    monkeypatch,
    secret_in_201_body,
):
    """Without the secret in the 201 body the stored secret would come from the handshake alone: a
    second handshake replacing it would hand the webhook to whoever sent it."""
    if not secret_in_201_body:
        real_create = AsanaClient.create_webhook

        def create_without_body_secret(self, *args, **kwargs):
            created = real_create(self, *args, **kwargs)
            return CreatedWebhook(webhook=created.webhook, secret="")

        monkeypatch.setattr(AsanaClient, "create_webhook", create_without_body_secret)
    real_deliver = world.asana.deliver
    answers = []

    def asana_then_attacker(url, headers, body):
        status, out_headers, reply = real_deliver(url, headers, body)
        if "X-Hook-Secret" in headers:  # the window is still open: the attacker replays a handshake
            answers.append(real_deliver(url, {"X-Hook-Secret": ATTACKER_SECRET}, b"")[0])
        return status, out_headers, reply

    world.asana.deliver = asana_then_attacker
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert answers == [403]
    assert [r.action for r in results] == ["registered"]
    hook = AsanaWebhook.objects.get()
    assert hook.secret == world.asana.webhooks[hook.webhook_gid]["secret"] != ATTACKER_SECRET
    world.asana.deliver = real_deliver
    assert_attacker_cannot_deliver(client, hook)


def test_a_forged_handshake_that_beats_asanas_captures_nothing(client, world: World):
    real_deliver = world.asana.deliver
    seen = []

    def attacker_first(url, headers, body):
        if "X-Hook-Secret" in headers:
            hook = AsanaWebhook.objects.get()
            seen.append(("forged handshake", handshake(client, hook, ATTACKER_SECRET).status_code))
            forged = task_event(3)
            seen.append(
                (
                    "signed delivery",
                    post(client, hook, forged, signed_by(ATTACKER_SECRET, forged)).status_code,
                )
            )
        status, out_headers, reply = real_deliver(url, headers, body)
        seen.append(("asana handshake", status))
        return status, out_headers, reply

    world.asana.deliver = attacker_first
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    # The forger's echo reached nobody that matters; its delivery in the window was refused, and
    # Asana's own handshake was refused, so Asana created no webhook.
    assert seen == [("forged handshake", 200), ("signed delivery", 401), ("asana handshake", 403)]
    assert [r.action for r in results] == ["failed"]
    assert world.asana.webhooks == {}
    hook = AsanaWebhook.objects.get()
    assert (hook.state, hook.secret, hook.pending_since) == (AsanaWebhook.State.GONE, "", None)
    world.asana.deliver = real_deliver
    assert_attacker_cannot_deliver(client, hook)
    assert not InboundEvent.objects.filter(
        source=InboundEvent.Source.ASANA_WEBHOOK, signature="valid"
    ).exists()
    # The next registration starts over and gets Asana's secret.
    assert [r.action for r in watchdog.ensure_webhooks(world.tenant, world.clients.asana)] == ["registered"]
    hook.refresh_from_db()
    assert hook.secret == world.asana.webhooks[hook.webhook_gid]["secret"]


def test_a_201_secret_that_differs_from_the_handshake_drops_the_secret_and_the_url(
    client,
    world: World,
    monkeypatch,
):
    real_create = AsanaClient.create_webhook

    def create_with_other_secret(self, *args, **kwargs):
        created = real_create(self, *args, **kwargs)
        return CreatedWebhook(webhook=created.webhook, secret="a-different-secret-from-the-201-body")

    monkeypatch.setattr(AsanaClient, "create_webhook", create_with_other_secret)
    hook_before = watchdog.registration_rows(world.tenant)[0]
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert [r.action for r in results] == ["refused"]
    hook = AsanaWebhook.objects.get()
    assert (hook.state, hook.secret) == (AsanaWebhook.State.GONE, "")
    assert hook.target_uuid != hook_before.target_uuid
    assert world.asana.webhooks == {}
