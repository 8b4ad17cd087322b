"""The receive path's hand-written INSERT (audit/rows.RowInsert, as base/receiver.py uses it) stores
the row the ORM would, keeps the dedupe key's semantics, and skips nothing that listens to InboundEvent
saves.

Run on SQLite by default and on PostgreSQL with DATABASE_URL: the SQL is written per vendor.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, models, transaction
from django.db.models.signals import post_init, post_save, pre_init, pre_save
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import InboundEvent
from integrations.base.receiver import _insert, insert_event, store_once
from integrations.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)
COLUMNS = [f.attname for f in InboundEvent._meta.concrete_fields if not f.primary_key]
ASANA = InboundEvent.Source.ASANA_WEBHOOK


@pytest.fixture
def tenant() -> Tenant:
    return Tenant.objects.create(slug="insert-check", name="Insert check")


def stored(pk: int) -> dict:
    row = InboundEvent.objects.values(*COLUMNS).get(pk=pk)
    row["raw_body"] = bytes(row["raw_body"])  # memoryview on PostgreSQL, bytes on SQLite
    return row


def full(tenant: Tenant, original: InboundEvent) -> dict:
    return {
        "tenant": tenant,
        "source": ASANA,
        "endpoint_uuid": uuid.UUID("6f1c7f52-2a43-4b3f-9a55-0c1d2e3f4a5b"),
        "headers": {"X-Hook-Signature": "[redacted]", "User-Agent": "Asana ✓", "Nested": {"a": [1, None]}},
        "raw_body": b'{"events": [{"action": "changed"}]}\x00\xff',
        "signature": InboundEvent.Verdict.VALID,
        "status": InboundEvent.Status.IGNORED,
        "status_reason": "story events are not used by any flow — « ignored »",
        "processed_at": datetime(2026, 12, 3, 11, 30, 15, 123456, tzinfo=ZoneInfo("America/Chicago")),
        "duplicate_of": original,
    }


CASES = {
    "defaults": lambda tenant, original: {"source": ASANA},
    "every column": full,
    "by attname": lambda tenant, original: {
        "tenant_id": tenant.pk,
        "source": InboundEvent.Source.ACUMATICA_PUSH,
        "endpoint_uuid": "6f1c7f52-2a43-4b3f-9a55-0c1d2e3f4a5b",  # a string, as the ORM accepts it
        "raw_body": memoryview(b"rows"),
        "headers": {},
        "duplicate_of_id": original.pk,
        "processed_at": None,
    },
}


@pytest.mark.parametrize("case", CASES)
def test_the_raw_insert_stores_what_the_orm_stores(tenant, case):
    original = InboundEvent.objects.create(source=ASANA)
    before = timezone.now()
    by_orm = InboundEvent.objects.create(**CASES[case](tenant, original))
    by_insert = insert_event(**CASES[case](tenant, original))
    after = timezone.now()
    orm_row, raw_row = stored(by_orm.pk), stored(by_insert)
    assert before <= raw_row.pop("received_at") <= after  # auto_now_add: stamped at the insert
    orm_row.pop("received_at")
    assert raw_row == orm_row
    # Read back as a model, the same Python values too (JSON, tz-aware datetimes, the uuid).
    a, b = InboundEvent.objects.get(pk=by_orm.pk), InboundEvent.objects.get(pk=by_insert)
    for name in ("headers", "endpoint_uuid", "processed_at", "status", "signature", "tenant_id"):
        assert getattr(a, name) == getattr(b, name), name
    assert b.received_at.tzinfo is not None


def test_what_the_orm_refuses_the_raw_insert_refuses():
    with pytest.raises(TypeError):
        InboundEvent.objects.create(source=ASANA, raw_body="a str is not a body")
    with pytest.raises(TypeError):
        insert_event(source=ASANA, raw_body="a str is not a body")
    with pytest.raises(TypeError):
        insert_event(source=ASANA, no_such_column=1)
    assert not InboundEvent.objects.exists()


def test_a_stored_dedupe_key_inserts_nothing_and_leaves_the_transaction_usable():
    first = insert_event(source=ASANA, dedupe_key="asana:1:k", status=InboundEvent.Status.QUEUED)
    assert first is not None
    with transaction.atomic():
        assert insert_event(source=ASANA, dedupe_key="asana:1:k") is None
        assert InboundEvent.objects.count() == 1  # no aborted transaction to roll back
    assert insert_event(source=ASANA) is not None  # no key: never a conflict
    assert insert_event(source=ASANA) is not None
    # The key is unique per source.
    assert insert_event(source=InboundEvent.Source.ACUMATICA_PUSH, dedupe_key="asana:1:k") is not None
    assert InboundEvent.objects.filter(dedupe_key="asana:1:k").count() == 2


def test_store_once_records_a_repeat_as_a_duplicate_of_the_original():
    fields = {"source": ASANA, "dedupe_key": "asana:1:d", "status": InboundEvent.Status.QUEUED}
    fields["raw_body"] = b"x"
    first, new = store_once(**dict(fields))
    assert new
    again, new = store_once(**dict(fields))
    assert not new and again != first
    dup = InboundEvent.objects.get(pk=again)
    assert dup.status == InboundEvent.Status.DUPLICATE and dup.duplicate_of_id == first
    assert dup.dedupe_key is None and f"#{first}" in dup.status_reason and bytes(dup.raw_body) == b"x"
    assert InboundEvent.objects.get(pk=first).status == InboundEvent.Status.QUEUED


def test_another_integrity_error_is_not_taken_for_a_duplicate():
    with pytest.raises(IntegrityError):
        insert_event(source=ASANA, tenant_id=987654321, dedupe_key="asana:1:fk")
    assert not InboundEvent.objects.exists()


def test_nothing_listens_to_inbound_event_saves():
    """The raw INSERT sends no model signal, calls no save() and writes every column from Python: if
    InboundEvent ever gains a listener, a save() override or a db_default, the receive path must go back
    to the ORM (or do the same) — this fails first."""
    for signal in (pre_init, post_init, pre_save, post_save):
        assert not signal.has_listeners(InboundEvent), signal
    assert InboundEvent.save is models.Model.save
    assert all(f.db_default is models.NOT_PROVIDED for f in InboundEvent._meta.concrete_fields)
    assert InboundEvent._meta.db_returning_fields == [InboundEvent._meta.pk]


def test_on_postgresql_the_values_are_bound_on_the_server():
    """Django binds values client-side by default (psycopg's ClientCursor quotes each one into the SQL
    text); the receive path's INSERT sends them as parameters. Same statement, same errors, logged."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has one binding")
    import psycopg

    with _insert.cursor(connection) as cursor:
        assert isinstance(cursor.cursor, psycopg.Cursor)
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)
    with CaptureQueriesContext(connection) as ctx:
        assert insert_event(source=ASANA, dedupe_key="asana:1:bound") is not None
        assert insert_event(source=ASANA, dedupe_key="asana:1:bound") is None
    assert [q["sql"].split()[0] for q in ctx.captured_queries] == ["INSERT", "INSERT"]


@pytest.mark.parametrize("prepared", [True, False])
def test_on_postgresql_the_insert_is_prepared_once_per_connection_unless_turned_off(settings, prepared):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    settings.INGEST_PREPARED_INSERT = prepared
    connection.close()  # a new server session: nothing prepared yet
    connection.ensure_connection()
    connection.connection.prepare_threshold = None  # as Django opens it
    for n in range(3):
        assert insert_event(source=ASANA, dedupe_key=f"asana:1:prepared-{prepared}-{n}") is not None
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        statements = [row[0] for row in cursor.fetchall()]
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == (1 if prepared else 0)
    assert InboundEvent.objects.filter(dedupe_key__startswith=f"asana:1:prepared-{prepared}-").count() == 3


def test_a_database_without_returning_stores_the_same_row_by_the_orm(monkeypatch):
    """SQLite before 3.35 has no RETURNING: the receive path falls back to the ORM, same semantics."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only: PostgreSQL always returns the id")
    monkeypatch.setattr(type(connection.features), "can_return_columns_from_insert", False)
    first = insert_event(source=ASANA, dedupe_key="asana:1:no-returning")
    assert first is not None
    assert insert_event(source=ASANA, dedupe_key="asana:1:no-returning") is None
    assert InboundEvent.objects.filter(dedupe_key="asana:1:no-returning").count() == 1
    row, new = store_once(source=ASANA, dedupe_key="asana:1:no-returning")
    assert not new and InboundEvent.objects.get(pk=row).duplicate_of_id == first
