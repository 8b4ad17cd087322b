"""Push rows read as Acumatica writes them: internal type codes, table-prefixed columns; the rest
answered 200, stored as `unreadable` with its columns and shown on the dashboard (issue 15 item 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.models import InboundEvent
from integrations.acumatica.push_rows import BILLS, ORDERS, read_rows
from integrations.console.dashboard import build_dashboard
from integrations.models import AcumaticaConnection, RecordLink

from .test_documents_push import HEADER, pushing  # noqa: F401
from .test_documents_support import *  # noqa: F403
from .test_documents_support import PUSH_SECRET, tasks_in_project

FIXTURES = Path(__file__).parents[2] / "fixtures" / "acumatica_push"


def fixture(name: str) -> dict:
    body = json.loads((FIXTURES / f"{name}.json").read_text())
    body.pop("_source")
    return body


def deliver(pushing, tenant, body: dict) -> int:  # noqa: F811
    conn = AcumaticaConnection.objects.get(tenant=tenant)
    status, _h, _b = pushing.deliver(
        f"http://testserver/hooks/acumatica/{conn.push_uuid}/",
        {"Content-Type": "application/json", HEADER: PUSH_SECRET},
        json.dumps(body).encode(),
    )
    return status


@pytest.mark.parametrize(
    ("name", "kind", "key"),
    [
        ("push__bill_internal_type_code", BILLS, ("Bill", "000001")),
        ("push__bill_table_prefixed_columns", BILLS, ("Bill", "000001")),
        ("push__bill_prefixed_internal_code", BILLS, ("Credit Adj.", "000002")),
        ("push__order_internal_type_code", ORDERS, ("Normal", "PO000007")),
        ("push__bill_deleted_only", BILLS, ("Bill", "000001")),
    ],
)
def test_every_spelling_of_a_key_reads_as_the_display_value(name, kind, key):
    reading = read_rows(fixture(name))
    assert reading.for_kind(kind) == [key]
    assert reading.unreadable == []
    other = ORDERS if kind == BILLS else BILLS
    assert reading.for_kind(other) == []


def test_an_unknown_type_code_passes_through_for_the_re_read_to_judge():
    reading = read_rows({"Inserted": [{"DocType": "QCK", "RefNbr": "1"}]})
    assert reading.for_kind(BILLS) == [("QCK", "1")]


@pytest.mark.parametrize("name", ["push__bill_internal_type_code", "push__bill_table_prefixed_columns"])
def test_a_bill_pushed_with_codes_or_prefixed_columns_is_synced(name, pushing, asana, docs_tenant):  # noqa: F811
    assert deliver(pushing, docs_tenant, fixture(name)) == 200
    event = InboundEvent.objects.get(source="acumatica_push")
    assert event.status == InboundEvent.Status.PROCESSED, event.status_reason
    tasks = tasks_in_project(asana)
    assert len(tasks) == 1
    link = RecordLink.objects.get(acumatica_ref="000001")
    assert link.asana_task_gid in tasks


def test_an_unreadable_push_is_answered_stored_with_its_columns_and_counted(pushing, asana, docs_tenant):  # noqa: F811
    assert deliver(pushing, docs_tenant, fixture("push__unreadable_columns")) == 200
    event = InboundEvent.objects.get(source="acumatica_push")
    assert event.status == InboundEvent.Status.UNREADABLE
    assert "Document, Kind, Status" in event.status_reason  # the columns it had
    assert "RefNbr" in event.status_reason and "APInvoice_" in event.status_reason  # what was expected
    assert json.loads(bytes(event.raw_body))["Inserted"][0]["Document"] == "000001"
    assert tasks_in_project(asana) == {}
    [row] = build_dashboard(tenants=type(docs_tenant).objects.filter(pk=docs_tenant.pk))
    assert row.items["unreadable"].value == "1" and row.items["unreadable"].level == "amber"


def test_a_push_while_the_broker_is_down_is_answered_200_and_synced_by_the_sweep(
    pushing,  # noqa: F811
    asana,
    docs_tenant,
    monkeypatch,
):
    import django_q.tasks
    from redis.exceptions import ConnectionError as RedisConnectionError

    from integrations.flows.inbound.events import requeue_stuck_events

    def broker_down(*_a, **_k):
        raise RedisConnectionError("Connection refused")

    with monkeypatch.context() as m:
        m.setattr(django_q.tasks, "async_task", broker_down)
        assert deliver(pushing, docs_tenant, fixture("push__bill_internal_type_code")) == 200
    event = InboundEvent.objects.get(source="acumatica_push")
    assert event.status == InboundEvent.Status.RECEIVED and tasks_in_project(asana) == {}
    assert requeue_stuck_events().startswith("1 event(s) queued after a broker outage")
    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PROCESSED, event.status_reason
    assert len(tasks_in_project(asana)) == 1
