"""What one delivery costs on the receive path (issue 17): SQL statements, decryptions, row updates.

Counted in autocommit (transactional tests), as in production: the hook views are non-atomic.
"""

from __future__ import annotations

import io
import json
import os

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from fernet_fields.fields import EncryptedField

from audit.models import InboundEvent
from integrations.asana import webhooks
from integrations.flows.common import task_events
from integrations.flows.documents import queue as documents_queue
from integrations.flows.inbound import receivers
from integrations.models import AcumaticaConnection, AsanaWebhook
from tests.flows.inbound.harness import DEMO, World, world  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "c" * 64
PUSH_HEADER = "X-ML-Connector-Secret"


@pytest.fixture
def decryptions(monkeypatch):
    calls: list[int] = []
    original = EncryptedField.from_db_value

    def counting(self, value, *args):
        if value is not None:
            calls.append(1)
        return original(self, value, *args)

    monkeypatch.setattr(EncryptedField, "from_db_value", counting)
    return calls


def wsgi_post(app, path: str, body: bytes, **headers: str) -> tuple[str, bytes]:
    """POST `body` straight to a WSGI `app` (no test client, no middleware of its own): (status, body)."""
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "CONTENT_TYPE": "application/json",
        "REMOTE_ADDR": "127.0.0.1",
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    status: list[str] = []
    out = b"".join(app(environ, lambda s, h: status.append(s)))
    return status[0], out


def asana_event(n: int) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "user": {"gid": DEMO["users"]["alice"], "resource_type": "user"},
                    "created_at": f"2026-05-01T10:{n // 60:02d}:{n % 60:02d}.000Z",
                    "action": "changed",
                    "resource": {"gid": "1300000000000900", "resource_type": "task"},
                    "change": {"field": "completed", "action": "changed"},
                }
            ]
        }
    ).encode()


def statements(ctx) -> list[str]:
    return [q["sql"].split()[0].upper() for q in ctx.captured_queries]


def test_an_asana_delivery_is_one_insert_and_no_webhook_update(
    world: World,  # noqa: F811
    client,
    monkeypatch,
    decryptions,
):
    hook = AsanaWebhook.objects.create(
        tenant=world.tenant,
        resource_gid=DEMO["ap_project"],
        webhook_gid="1300000000000001",
        secret=SECRET,
        state=AsanaWebhook.State.ACTIVE,
    )
    queued: list[int] = []
    monkeypatch.setattr(task_events, "enqueue_asana_event", queued.append)
    now = [5000.0]
    monkeypatch.setattr(receivers.asana, "clock", lambda: now[0])
    url = f"/hooks/asana/{hook.target_uuid}/"

    def deliver(n: int):
        body = asana_event(n)
        sig = {"X-Hook-Signature": webhooks.sign(SECRET, body)}
        return client.post(url, data=body, content_type="application/json", headers=sig)

    decryptions.clear()
    with CaptureQueriesContext(connection) as first:
        assert deliver(0).status_code == 200
    # The first delivery reads the endpoint (one SELECT, one decryption: the webhook's secret, not the
    # AsanaConnection's credentials) and writes last_event_at once.
    assert statements(first) == ["SELECT", "INSERT", "UPDATE"]
    assert len(decryptions) == 1
    for n in range(1, 21):
        with CaptureQueriesContext(connection) as ctx:
            assert deliver(n).status_code == 200
        assert statements(ctx) == ["INSERT"], ctx.captured_queries
    assert len(decryptions) == 1
    assert len(queued) == 21 == InboundEvent.objects.filter(status="queued").count()
    seen = AsanaWebhook.objects.get(pk=hook.pk).last_event_at
    assert seen is not None
    now[0] += 61  # a minute later (and a cache refresh): one read, one bookkeeping update
    with CaptureQueriesContext(connection) as later:
        assert deliver(99).status_code == 200
    assert statements(later) == ["SELECT", "INSERT", "UPDATE"]


def test_an_acumatica_push_is_one_insert(world: World, client, monkeypatch, decryptions):  # noqa: F811
    conn = AcumaticaConnection.objects.get(tenant=world.tenant)
    conn.push_secret = "push-secret-0123456789"
    conn.save()
    queued: list[int] = []
    monkeypatch.setattr(documents_queue, "enqueue_push_event", queued.append)
    url = f"/hooks/acumatica/{conn.push_uuid}/"

    def deliver(n: int):
        body = json.dumps(
            {"Query": "ML Bills", "Id": f"id-{n}", "Inserted": [{"DocType": "INV", "RefNbr": f"{n:06d}"}]}
        ).encode()
        headers = {PUSH_HEADER: "push-secret-0123456789"}
        return client.post(url, data=body, content_type="application/json", headers=headers)

    decryptions.clear()
    with CaptureQueriesContext(connection) as first:
        assert deliver(0).status_code == 200
    assert statements(first) == ["SELECT", "INSERT"]
    assert len(decryptions) == 1  # the push secret only: not the OAuth secrets, password or tokens
    for n in range(1, 11):
        with CaptureQueriesContext(connection) as ctx:
            assert deliver(n).status_code == 200
        assert statements(ctx) == ["INSERT"]
    assert len(queued) == 11


def test_the_wsgi_entry_serves_hooks_without_the_console_middleware(world: World, monkeypatch):  # noqa: F811

    from connector_site.wsgi import application

    hook = AsanaWebhook.objects.create(
        tenant=world.tenant, resource_gid=DEMO["ap_project"], secret=SECRET, state=AsanaWebhook.State.ACTIVE
    )
    queued: list[int] = []
    monkeypatch.setattr(task_events, "enqueue_asana_event", queued.append)

    def call(path: str, body: bytes, **headers: str):
        return wsgi_post(application, path, body, **headers)

    body = asana_event(1)
    with CaptureQueriesContext(connection) as ctx:
        status, _ = call(
            f"/hooks/asana/{hook.target_uuid}/", body, X_HOOK_SIGNATURE=webhooks.sign(SECRET, body)
        )
    assert status.startswith("200") and len(queued) == 1
    assert "SELECT 1" not in [q["sql"] for q in ctx.captured_queries]  # no per-request health check
    assert InboundEvent.objects.get(pk=queued[0]).status == "queued"
    # The console still has its middleware: an anonymous admin request is redirected to the login.
    environ_status, _ = call("/admin/", b"")
    assert environ_status.startswith(("302", "403", "405"))


def test_the_hook_handler_resolves_each_hook_path_once(world: World, monkeypatch):  # noqa: F811
    """A hook path is resolved once per process; the match is kept (a 404 is not), and another
    endpoint's path resolves to its own uuid."""

    from django.core.handlers.base import BaseHandler

    from connector_site.wsgi import HookHandler

    hooks = [
        AsanaWebhook.objects.create(
            tenant=world.tenant,
            resource_gid=DEMO["ap_project"],
            webhook_gid=f"130000000000000{n}",
            secret=SECRET,
            state=AsanaWebhook.State.ACTIVE,
        )
        for n in (1, 2)
    ]
    queued: list[int] = []
    monkeypatch.setattr(task_events, "enqueue_asana_event", queued.append)
    resolved: list[str] = []
    real_resolve = BaseHandler.resolve_request

    def resolve(self, request):
        resolved.append(request.path_info)
        return real_resolve(self, request)

    monkeypatch.setattr(BaseHandler, "resolve_request", resolve)
    handler = HookHandler()

    def post(path: str, n: int) -> str:
        body = asana_event(n)
        return wsgi_post(handler, path, body, X_HOOK_SIGNATURE=webhooks.sign(SECRET, body))[0]

    first, second = (f"/hooks/asana/{h.target_uuid}/" for h in hooks)
    assert [post(first, n) for n in range(3)] == ["200 OK"] * 3
    assert resolved == [first]
    assert [post("/hooks/asana/not-a-uuid/", n) for n in (3, 4)] == ["404 Not Found"] * 2
    assert post(second, 5) == "200 OK" and post(second, 6) == "200 OK"
    assert resolved == [first, "/hooks/asana/not-a-uuid/", "/hooks/asana/not-a-uuid/", second]
    rows = InboundEvent.objects.filter(pk__in=queued).order_by("pk")
    assert [r.endpoint_uuid for r in rows] == [hooks[0].target_uuid] * 3 + [hooks[1].target_uuid] * 2


def test_a_worker_imports_the_hook_paths_views_when_it_starts_not_at_its_first_delivery():
    """Each gunicorn worker imports connector_site.wsgi at boot; its first delivery must not pay for the
    URLconf, the views or the task broker's imports (about 100 + 55 ms: the slowest hook answers in the
    retention-purge benchmark)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; import connector_site.wsgi; from django.urls import get_resolver; "
        "before = set(sys.modules); "
        "get_resolver().resolve('/hooks/asana/6f1c7f52-2a43-4b3f-9a55-0c1d2e3f4a5b/'); "
        "get_resolver().resolve('/hooks/acumatica/6f1c7f52-2a43-4b3f-9a55-0c1d2e3f4a5b/'); "
        "from integrations.base.enqueue import broker; broker(); "  # as enqueue_task takes it
        "print(sorted(m for m in set(sys.modules) - before))"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_URL"},  # REDIS_URL kept: either broker
        "DJANGO_SETTINGS_MODULE": "connector_site.settings",
        "DEBUG": "true",
        "ML_CONNECTOR_ENV_FILE": "",
    }
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"  # nothing left to import at the first delivery
