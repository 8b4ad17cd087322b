"""A created task's audit rows (AuditEntry, GuardedWrite) stored by one INSERT (audit/rows.py) are the
rows the ORM stores, column by column, and nothing listening to their saves is skipped.

Run on SQLite by default and on PostgreSQL with DATABASE_URL: the SQL is written per vendor.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import models, transaction
from django.db.models.signals import post_init, post_save, pre_init, pre_save
from django.utils import timezone

from audit.models import AppendOnlyModel, AuditEntry, SyncRun
from audit.recorder import append_entry, audit_context, record_entry
from integrations.flows.common import binding
from integrations.models import Flow, GuardedWrite, RecordLink, Tenant

pytestmark = pytest.mark.django_db(transaction=True)
ASANA_TIME = datetime(2026, 12, 3, 9, 15, 2, 345000, tzinfo=ZoneInfo("America/Denver"))


@pytest.fixture
def link() -> RecordLink:
    tenant = Tenant.objects.create(slug="rows", name="Rows")
    flow = Flow.objects.create(tenant=tenant, name="AP bills", kind="acumatica_bills")
    return RecordLink.objects.create(
        tenant=tenant, flow=flow, kind="bill", acumatica_type="Bill", acumatica_ref="000123", state="linked"
    )


def columns(model) -> list[str]:
    stamped = [f.attname for f in model._meta.concrete_fields if getattr(f, "auto_now_add", False)]
    return [f.attname for f in model._meta.concrete_fields if not f.primary_key and f.attname not in stamped]


def entry_cases(link: RecordLink) -> dict[str, dict]:
    return {
        "defaults": {},
        "every column": {
            "flow": link.flow,
            "record_key": "Bill/000123",
            "idempotency_key": "bill:000123:create",
            "source_snapshot": {"Amount": {"value": 1200.5}, "Vendor": "ABC Concrete ✓", "token": "secret-1"},
            "payload": {"data": {"name": "Bill 000123", "custom_fields": {"1": 1200.5}}, "notes": None},
            "field_diff": {"Amount": [1000, 1200.5]},
            "error": "« nothing »",
            "error_class": "",
            "attempts": 3,
            "actor": "person@example.com",
        },
    }


@pytest.mark.parametrize("case", ["defaults", "every column"])
def test_an_appended_entry_is_the_row_record_entry_stores(link, case):
    run = SyncRun.objects.create(tenant=link.tenant, flow=link.flow)
    before = timezone.now()
    with audit_context(run=run, record_link=link, actor="poller"):
        by_orm = record_entry(
            tenant=link.tenant, operation="create_task", status="succeeded", **entry_cases(link)[case]
        )
        by_insert = append_entry(
            tenant=link.tenant, operation="create_task", status="succeeded", **entry_cases(link)[case]
        )
    after = timezone.now()
    cols = columns(AuditEntry)
    orm_row = AuditEntry.objects.values(*cols).get(pk=by_orm.pk)
    raw_row = AuditEntry.objects.values(*cols).get(pk=by_insert)
    assert raw_row == orm_row
    assert raw_row["run_id"] == run.pk and raw_row["record_link_id"] == link.pk  # from the audit context
    if case == "every column":
        assert "secret-1" not in str(raw_row["source_snapshot"])  # redacted on both paths
    stamped = AuditEntry.objects.get(pk=by_insert).created_at
    assert before <= stamped <= after and stamped.tzinfo is not None
    with pytest.raises(Exception, match="append-only"):  # read back as a model: still append-only
        AuditEntry.objects.get(pk=by_insert).save()


def test_a_first_guarded_write_is_the_row_the_orm_stores(link):
    values = {"amount": "1200.50", "vendor": "ABC Concrete", "due": "2026-12-31"}
    with transaction.atomic():
        binding.record_first_write(link, values, ASANA_TIME, operation="create")
    by_orm = GuardedWrite.objects.create(
        link=link,
        generation=link.generation,
        operation="create",
        values=dict(values),
        previous={},
        asana_time=ASANA_TIME,
        approval_reset=False,
    )
    cols = columns(GuardedWrite)
    raw_row, orm_row = (GuardedWrite.objects.values(*cols).get(pk=pk) for pk in (by_orm.pk - 1, by_orm.pk))
    assert raw_row == orm_row
    assert raw_row["asana_time"] == ASANA_TIME  # the same instant, whatever zone it came in
    assert GuardedWrite.objects.get(pk=by_orm.pk - 1).recorded_at.tzinfo is not None
    assert Decimal(raw_row["values"]["amount"]) == Decimal("1200.50")


@pytest.mark.parametrize("model", [AuditEntry, GuardedWrite])
def test_nothing_listens_to_the_saves_the_insert_skips(model):
    """If either model gains a signal listener, a save() of its own or a database default, its hot path
    must go back to the ORM (or do the same): this fails first."""
    for signal in (pre_init, post_init, pre_save, post_save):
        assert not signal.has_listeners(model), (model, signal)
    assert model.save in (
        models.Model.save,
        AppendOnlyModel.save,
    )  # the append-only guard refuses updates only
    assert all(f.db_default is models.NOT_PROVIDED for f in model._meta.concrete_fields)
    assert model._meta.db_returning_fields == [model._meta.pk]
