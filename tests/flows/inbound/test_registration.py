"""Registration against the sandbox: the real handshake reaches our view while POST /webhooks is open."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command

from audit.models import InboundEvent
from integrations.base.refusals import refusals
from integrations.flows.inbound import watchdog
from integrations.models import AsanaWebhook, Flow

from .harness import DEMO, World, world  # noqa: F401


def test_ensure_registers_one_webhook_per_project_with_the_201_secret(world: World):  # noqa: F811
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert [r.action for r in results] == ["registered"]
    hook = AsanaWebhook.objects.get()
    remote = world.asana.webhooks[hook.webhook_gid]
    assert hook.state == AsanaWebhook.State.ACTIVE and hook.pending_since is None
    assert hook.secret == remote["secret"]  # the handshake's secret, confirmed by the 201 body
    assert remote["target"] == f"http://testserver/hooks/asana/{hook.target_uuid}/"
    assert remote["filters"] == watchdog.default_filters()
    handshake = InboundEvent.objects.get(source=InboundEvent.Source.ASANA_HANDSHAKE)
    assert handshake.status == InboundEvent.Status.PROCESSED
    assert remote["secret"] not in str(handshake.headers)


def test_ensure_twice_registers_nothing_new(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    again = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert [r.action for r in again] == ["exists"]
    assert len(world.asana.webhooks) == 1


def test_registered_webhook_receives_signed_heartbeat_and_events(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    results = world.asana.deliver_pending_events()
    assert results and all(status == 200 for _, status in results)
    hook = AsanaWebhook.objects.get()
    assert hook.last_heartbeat_at is not None
    assert world.asana.webhooks[hook.webhook_gid]["active"] is True


def test_a_second_handshake_in_the_window_is_refused_and_asanas_secret_kept(world: World):  # noqa: F811
    real = world.asana.deliver
    answers = []

    def tampering(url, headers, body):
        status, out_headers, reply = real(url, headers, body)
        if "X-Hook-Secret" in headers:  # an attacker's second handshake lands during the window
            answers.append(real(url, {"X-Hook-Secret": "attacker-secret-0000000000"}, b"")[0])
        return status, out_headers, reply

    world.asana.deliver = tampering
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert answers == [403]  # the first handshake answered closed the window
    assert results[0].action == "registered"
    hook = AsanaWebhook.objects.get()
    assert hook.secret == world.asana.webhooks[hook.webhook_gid]["secret"]
    # The refusal is counted against its sender, and costs no row (a handshake anyone can send
    # proves nothing; a 201 secret that differs is refused too: tests/security).
    assert refusals.seen("127.0.0.1") == 1
    assert not InboundEvent.objects.filter(
        source=InboundEvent.Source.ASANA_HANDSHAKE, status=InboundEvent.Status.REJECTED
    ).exists()


def test_duplicated_webhook_is_adopted(world: World):  # noqa: F811
    watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    hook = AsanaWebhook.objects.get()
    gid = hook.webhook_gid
    AsanaWebhook.objects.filter(pk=hook.pk).update(webhook_gid="", state=AsanaWebhook.State.GONE)  # lost 201
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert results[0].action == "adopted"
    hook.refresh_from_db()
    assert (hook.webhook_gid, hook.state) == (gid, AsanaWebhook.State.ACTIVE)
    assert len(world.asana.webhooks) == 1


def test_handshake_refused_fails_registration_and_closes_the_window(world: World):  # noqa: F811
    world.asana.deliver = lambda url, headers, body: (500, {}, b"down")
    results = watchdog.ensure_webhooks(world.tenant, world.clients.asana)
    assert results[0].action == "failed"
    hook = AsanaWebhook.objects.get()
    assert hook.state == AsanaWebhook.State.GONE and hook.pending_since is None


def test_only_flows_consuming_task_events_get_webhooks(world: World):  # noqa: F811
    Flow.objects.filter(kind=Flow.Kind.ASANA_APPROVALS).update(enabled=False)
    assert watchdog.ensure_webhooks(world.tenant, world.clients.asana) == []


def test_connector_webhooks_ensure_command(world: World):  # noqa: F811
    out = StringIO()
    call_command("connector", "webhooks", "ensure", "--tenant", "ridgeline", stdout=out)
    text = out.getvalue()
    assert "registered" in text and "schedule asana-webhook-watchdog" in text
    from django_q.models import Schedule

    call_command("connector", "webhooks", "ensure", "--tenant", "ridgeline", stdout=StringIO())
    assert Schedule.objects.filter(name="asana-webhook-watchdog").count() == 1


def test_console_action_queues_registration(world: World, admin_client):  # noqa: F811
    response = admin_client.post(
        "/admin/integrations/tenant/",
        {"action": "register_webhooks", "_selected_action": [world.tenant.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "queued for 1 tenant" in response.content.decode()
    assert AsanaWebhook.objects.get().state == AsanaWebhook.State.ACTIVE  # sync mode ran the task
