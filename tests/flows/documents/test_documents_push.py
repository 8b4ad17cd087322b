"""Acumatica push notifications: the shared webhook security suite, and pushes processed once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client

from audit.models import AuditEntry, InboundEvent
from integrations.flows.documents import queue as documents_queue
from integrations.flows.inbound import receivers
from integrations.models import AcumaticaConnection, RecordLink
from tests.webhook_cases import WebhookSecurityCases

from .test_documents_support import *  # noqa: F403
from .test_documents_support import PUSH_SECRET, tasks_in_project

FIXTURES = Path(__file__).parents[2] / "fixtures" / "acumatica_push"
HEADER = "X-ML-Connector-Secret"


class TestAcumaticaPushSecurity(WebhookSecurityCases):
    source = InboundEvent.Source.ACUMATICA_PUSH

    @pytest.fixture
    def endpoint_setup(self, docs_tenant, monkeypatch):
        self.conn = AcumaticaConnection.objects.get(tenant=docs_tenant)
        self._queued: list[int] = []
        monkeypatch.setattr(documents_queue, "enqueue_push_event", self._queued.append)
        return self.conn

    def url(self) -> str:
        return f"/hooks/acumatica/{self.conn.push_uuid}/"

    def sign(self, body: bytes) -> dict[str, str]:
        return {HEADER: AcumaticaConnection.objects.get(pk=self.conn.pk).push_secret}

    def bad_headers(self, body: bytes) -> dict[str, str]:
        return {HEADER: "not-the-push-secret"}

    def unsigned_headers(self, body: bytes) -> dict[str, str]:
        return {}

    def rotate_secret(self) -> None:
        conn = AcumaticaConnection.objects.get(pk=self.conn.pk)
        conn.push_secret = "rotated-push-secret-0002"
        conn.save()

    def event_body(self, n: int) -> bytes:
        row = {"DocType": "Bill", "RefNbr": f"00000{n}", "Status": "Balanced"}
        return json.dumps(
            {
                "Inserted": [row],
                "Deleted": [],
                "Query": "ML Connector: AP Bills",
                "CompanyId": "Ridgeline",
                "Id": f"00000000-0000-0000-0000-00000000000{n}",
                "TimeStamp": 1,
                "AdditionalInfo": {},
            }
        ).encode()

    def heartbeat_body(self):
        return None  # Acumatica sends no heartbeats

    def queued(self) -> list[int]:
        return list(self._queued)

    def receiver(self):
        return receivers.acumatica_push

    def test_body_without_query_or_id_is_refused(self, client, endpoint_setup):
        body = json.dumps({"Inserted": [], "Deleted": []}).encode()
        response = self.post(client, body, self.sign(body))
        assert response.status_code == 400 and b"Query or Id" in response.content
        assert self.rows().get().status == InboundEvent.Status.REJECTED
        assert self.queued() == []

    def test_unknown_uuid_is_404(self, client, endpoint_setup):
        body = self.event_body(1)
        response = client.post(
            "/hooks/acumatica/00000000-0000-4000-8000-000000000000/",
            data=body,
            content_type="application/json",
            headers=self.sign(body),
        )
        assert response.status_code == 404
        assert self.queued() == []


def _django_deliverer():
    client = Client()

    def deliver(url, headers, body):
        path = url.split("testserver", 1)[1]
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        response = client.post(path, data=body, content_type="application/json", headers=extra)
        return response.status_code, dict(response.headers), response.content

    return deliver


@pytest.fixture
def pushing(acu, docs_tenant, bills_flow, mounted, monkeypatch, now):
    """The Acumatica sandbox posts its notifications to our view; the worker runs inline (sync mode)."""
    from integrations.acumatica.client import client_for as acu_client
    from integrations.asana.client import client_for as asana_client
    from integrations.flows.documents import sync as acumatica_documents

    conn = AcumaticaConnection.objects.get(tenant=docs_tenant)
    acu.deliver = _django_deliverer()
    acu.configure_push(f"http://testserver/hooks/acumatica/{conn.push_uuid}/", HEADER, PUSH_SECRET)
    original = acumatica_documents.DocumentSync.__init__

    def init(self, flow, **kwargs):  # the worker's clients, on the test clocks
        kwargs.setdefault("acumatica", acu_client(flow.tenant.acumatica, sleep=now.sleep))
        kwargs.setdefault("asana", asana_client(flow.tenant.asana, rate_limiter=None, sleep=now.sleep))
        kwargs.setdefault("now", now.dt)
        original(self, flow, **kwargs)

    monkeypatch.setattr(acumatica_documents.DocumentSync, "__init__", init)
    return acu


def test_a_pushed_change_is_re_read_and_synced(pushing, asana):
    pushing.update_record("Bill", ("Bill", "000001"), Description="changed in the UI")
    event = InboundEvent.objects.get(source="acumatica_push")
    assert event.status == "processed", event.status_reason
    assert len(tasks_in_project(asana)) == 1
    entry = AuditEntry.objects.get(operation="create_task")
    assert entry.inbound_event_id == event.pk


def test_duplicate_push_notifications_are_processed_once(pushing, asana):
    pushing.force_duplicate_next()
    pushing.update_record("Bill", ("Bill", "000004"), Description="twice")
    events = list(InboundEvent.objects.filter(source="acumatica_push").order_by("pk"))
    assert [e.status for e in events] == ["processed", "duplicate"]
    assert len(tasks_in_project(asana)) == 1
    assert AuditEntry.objects.filter(inbound_event__isnull=False).count() == 1


def test_a_row_only_in_deleted_closes_the_task_when_the_bill_is_gone(pushing, asana, docs_tenant):
    pushing.update_record("Bill", ("Bill", "000001"), Description="first sync")
    gid = RecordLink.objects.get(acumatica_ref="000001").asana_task_gid
    del pushing.records["Bill"][("Bill", "000001")]
    body = json.loads((FIXTURES / "push__bill_deleted_only.json").read_text())
    body.pop("_source")
    conn = AcumaticaConnection.objects.get(tenant=docs_tenant)
    status, _h, _b = pushing.deliver(
        f"http://testserver/hooks/acumatica/{conn.push_uuid}/",
        {"Content-Type": "application/json", HEADER: PUSH_SECRET},
        json.dumps(body).encode(),
    )
    assert status == 200
    link = RecordLink.objects.get(acumatica_ref="000001")
    assert link.state == "deleted" and "deleted in Acumatica" in link.state_reason
    assert asana.tasks[gid]["completed"] is True
    assert any("deleted in Acumatica" in s.get("text", "") for s in asana.stories.values())
    assert AuditEntry.objects.filter(operation="close_task", status="succeeded").exists()


def test_a_row_only_in_deleted_for_a_bill_that_left_the_query_updates_it(pushing, asana, docs_tenant):
    pushing.update_record("Bill", ("Bill", "000001"), Description="first sync")
    pushing.update_record("Bill", ("Bill", "000001"), Status="Open")  # released: out of the GI filter
    link = RecordLink.objects.get(acumatica_ref="000001")
    assert link.state == "linked"
    assert AuditEntry.objects.filter(operation="update_task").exists()
