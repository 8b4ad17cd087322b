"""Webhook client calls and the sandbox's real handshake, signed deliveries, heartbeats and deaths.

The receiving view is a later issue; here a tiny fake target stands in for it through the sandbox's
injectable deliverer.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from integrations.asana.shapes import DuplicateWebhook
from integrations.base import errors
from sandbox.asana import DEMO

from .conftest import api_requests

AP = DEMO["ap_project"]
TARGET = "https://connector.example.com/hooks/asana/6f1c0d1e-5a2b-4c3d-9e8f-0a1b2c3d4e5f/"


class FakeTarget:
    """Echoes the handshake secret (or misbehaves on demand) and checks every signature."""

    def __init__(self, mode: str = "echo"):
        self.mode = mode
        self.secret: str | None = None
        self.handshakes: list[dict] = []
        self.batches: list[dict] = []
        self.bad_signatures = 0
        self.fail_with: int | None = None

    def __call__(self, url: str, headers: dict[str, str], body: bytes):
        if "X-Hook-Secret" in headers:
            self.handshakes.append({"url": url, "secret": headers["X-Hook-Secret"]})
            if self.mode == "ignore":
                return 200, {}, b""
            if self.mode == "error":
                return 500, {}, b"oops"
            self.secret = headers["X-Hook-Secret"]
            return 204, {"X-Hook-Secret": self.secret}, b""
        if self.fail_with:
            return self.fail_with, {}, b"Service Unavailable"
        expected = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, headers.get("X-Hook-Signature", "")):
            self.bad_signatures += 1
            return 401, {}, b""
        self.batches.append(json.loads(body))
        return 200, {}, b""


@pytest.fixture
def target(mounted):
    fake = FakeTarget()
    mounted.deliver = fake
    return fake


def test_create_performs_the_handshake_and_returns_the_body_secret(client, mounted, target):
    created = client.create_webhook(
        AP,
        TARGET,
        filters=[{"resource_type": "task", "action": "changed", "fields": ["completed", "custom_fields"]}],
    )
    assert len(target.handshakes) == 1 and target.handshakes[0]["url"] == TARGET
    assert created.secret == target.handshakes[0]["secret"] and len(created.secret) == 64
    webhook = created.webhook
    assert webhook["gid"] in mounted.webhooks and webhook["target"] == TARGET
    assert webhook["resource"]["gid"] == AP and webhook["active"] is False
    (post,) = api_requests(mounted, "POST", "/webhooks")
    assert json.loads(post.body)["data"]["filters"][0]["fields"] == ["completed", "custom_fields"]


@pytest.mark.parametrize("mode", ["ignore", "error"])
def test_handshake_not_acknowledged_fails_the_create(client, mounted, mode):
    mounted.deliver = FakeTarget(mode)
    with pytest.raises(errors.Invalid, match="handshake"):
        client.create_webhook(AP, TARGET)
    assert not mounted.webhooks


def test_duplicate_webhook_is_a_typed_403(client, mounted, target):
    client.create_webhook(AP, TARGET)
    with pytest.raises(DuplicateWebhook) as exc:
        client.create_webhook(AP, TARGET)
    assert exc.value.status == 403 and isinstance(exc.value, errors.Forbidden)
    assert len(mounted.webhooks) == 1 and len(target.handshakes) == 1


def test_localhost_target_refused(client, mounted, target):
    with pytest.raises(errors.Forbidden):
        client.create_webhook(AP, "https://localhost/hooks/asana/x/")
    assert not target.handshakes


def test_events_are_signed_over_the_raw_body_and_carry_the_reference_shape(client, mounted, target):
    created = client.create_webhook(AP, TARGET)
    task = client.create_task(name="Bill 1", project_gid=AP)
    alice = DEMO["users"]["alice"]
    mounted.ui_update_task(task["gid"], alice, custom_fields={DEMO["fields"]["vendor"]: "ACME"})
    mounted.ui_update_task(task["gid"], None, completed=True)
    mounted.deliver_pending_events()
    assert target.bad_signatures == 0
    heartbeat, batch = target.batches
    assert heartbeat == {"events": []}
    # Each change also leaves a story, announced as a story `added` under the task (as Asana does).
    stories = [e for e in batch["events"] if e["resource"]["resource_type"] == "story"]
    assert [(e["resource"]["resource_subtype"], e["parent"]["gid"]) for e in stories] == [
        ("text_custom_field_changed", task["gid"]),
        ("marked_complete", task["gid"]),
    ]
    task_events = [e for e in batch["events"] if e["resource"]["resource_type"] == "task"]
    actions = [(e["action"], (e.get("change") or {}).get("field")) for e in task_events]
    assert actions == [("added", None), ("changed", "custom_fields"), ("changed", "completed")]
    added, cf_change, completed = task_events
    assert added["user"] == {"gid": DEMO["connector_user"], "resource_type": "user"}
    assert added["parent"]["gid"] == AP
    assert cf_change["user"]["gid"] == alice and cf_change["created_at"].endswith("Z")
    assert cf_change["change"]["new_value"] == {
        "gid": DEMO["fields"]["vendor"],
        "resource_type": "custom_field",
    }
    assert completed["user"] is None and completed["resource"]["gid"] == task["gid"]
    assert client.get_webhook(created.webhook["gid"])["active"] is True


def test_filters_limit_what_is_delivered(client, mounted, target):
    client.create_webhook(
        AP, TARGET, filters=[{"resource_type": "task", "action": "changed", "fields": ["completed"]}]
    )
    gid = mounted.add_task(AP, "t")
    mounted.ui_update_task(gid, None, name="renamed")
    mounted.ui_update_task(gid, None, completed=True)
    mounted.deliver_pending_events()
    events = [e for b in target.batches for e in b["events"]]
    assert [(e["action"], e["change"]["field"]) for e in events] == [("changed", "completed")]


def test_heartbeats_are_signed_empty_batches(client, mounted, target):
    client.create_webhook(AP, TARGET)
    mounted.send_heartbeats()
    assert target.batches == [{"events": []}] and target.bad_signatures == 0


def test_failing_target_accumulates_failure_fields_then_the_webhook_is_deleted(client, mounted, target):
    mounted.max_delivery_failures = 3
    created = client.create_webhook(AP, TARGET)
    target.fail_with = 503
    mounted.add_task(AP, "t")
    mounted.deliver_pending_events()  # heartbeat and the batch fail
    (listed,) = client.list_webhooks(resource_gid=AP)
    assert listed["delivery_retry_count"] == 2 and listed["last_failure_content"].startswith("503")
    assert listed["last_failure_at"] and listed["failure_deletion_timestamp"] and listed["next_attempt_after"]
    listing = api_requests(mounted, "GET", "/webhooks")[-1]
    assert listing.arg("workspace") == DEMO["workspace"] and listing.arg("resource") == AP
    assert "failure_deletion_timestamp" in listing.arg("opt_fields").split(",")
    mounted.deliver_pending_events()
    assert client.list_webhooks() == []
    with pytest.raises(errors.NotFound):
        client.get_webhook(created.webhook["gid"])


def test_recovery_resets_the_failure_fields(client, mounted, target):
    client.create_webhook(AP, TARGET)
    target.fail_with = 500
    mounted.add_task(AP, "t")
    mounted.deliver_pending_events()
    target.fail_with = None
    mounted.deliver_pending_events()
    (listed,) = client.list_webhooks()
    assert listed["delivery_retry_count"] == 0 and listed.get("failure_deletion_timestamp") is None
    assert listed["last_success_at"] and len(target.batches[-1]["events"]) == 1


def test_delete_and_silent_deletion(client, mounted, target):
    first = client.create_webhook(AP, TARGET).webhook["gid"]
    client.delete_webhook(first)
    assert first not in mounted.webhooks
    second = client.create_webhook(AP, TARGET).webhook["gid"]
    mounted.delete_webhook_silently(second)
    with pytest.raises(errors.NotFound):
        client.get_webhook(second)
