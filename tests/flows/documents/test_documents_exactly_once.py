"""One bill becomes one task with every mapped field right; changes update only what changed."""

from __future__ import annotations

import json

from audit.models import AuditEntry
from integrations.models import RecordLink

from .test_documents_support import *  # noqa: F403
from .test_documents_support import D, F, tasks_in_project, writes


def _post_bodies(asana, path="/tasks"):
    return [json.loads(r.body)["data"] for r in asana.requests if r.method == "POST" and r.path == path]


def test_new_bill_becomes_one_task_with_every_mapped_field(make_sync, asana, acu):
    sync = make_sync()
    outcome = sync.process("Bill", "000001")

    assert outcome.plan.action == "create", outcome
    tasks = tasks_in_project(asana)
    assert len(tasks) == 1
    gid, task = next(iter(tasks.items()))
    assert task["name"] == "Bill 000001 · ABCCONCRETE · 18450.00"
    values = asana.task_values(gid)
    assert values[F["amount"]] == 18450.0
    assert values[F["due_date"]] == "2026-04-01"
    assert values[F["vendor"]] == "ABCCONCRETE"
    assert values[F["document_status"]] == D["options"]["document_status"]["Balanced"]
    assert values[F["erp_reference"]] == "Bill/000001"
    # one Asana write: every custom field in the create call
    assert writes(asana) == [("POST", "/tasks")]
    link = RecordLink.objects.get(acumatica_type="Bill", acumatica_ref="000001")
    assert (link.state, link.asana_task_gid, link.attempt_started_at) == ("linked", gid, None)
    entry = AuditEntry.objects.get(record_link=link)
    assert entry.operation == "create_task" and entry.status == "succeeded"
    assert entry.source_snapshot["Vendor"] == "ABCCONCRETE"
    assert entry.payload["custom_fields"][F["erp_reference"]] == "Bill/000001"


def test_a_change_updates_only_the_changed_fields_and_no_change_costs_no_write(make_sync, asana, acu):
    make_sync().process("Bill", "000001")
    seen = len(asana.requests)

    make_sync().process("Bill", "000001")  # unchanged
    assert writes(asana, seen) == []

    acu.update_record("Bill", ("Bill", "000001"), Amount=19000.5)
    outcome = make_sync().process("Bill", "000001")
    assert outcome.plan.action == "update"
    puts = [json.loads(r.body)["data"] for r in asana.requests[seen:] if r.method == "PUT"]
    assert len(puts) == 1
    assert puts[0] == {
        "name": "Bill 000001 · ABCCONCRETE · 19000.50",
        "custom_fields": {F["amount"]: 19000.5},
    }
    entry = AuditEntry.objects.filter(operation="update_task").get()
    assert entry.field_diff[f"custom_fields.{F['amount']}"] == [18450.0, 19000.5]
    statuses = list(AuditEntry.objects.order_by("id").values_list("status", flat=True))
    assert statuses == ["succeeded", "succeeded"]  # the unchanged pass wrote no row


def test_a_flow_with_a_section_still_creates_in_one_write(make_sync, asana, bills_flow):
    section = D["ap_sections"]["awaiting_approval"]
    bills_flow.asana_section_gid = section
    bills_flow.save()
    make_sync(bills_flow).process("Bill", "000001")
    assert writes(asana) == [("POST", "/tasks")]
    body = _post_bodies(asana)[0]
    assert body["memberships"] == [{"project": D["ap_project"], "section": section}]
    ((gid, task),) = tasks_in_project(asana).items()
    assert task["sections"] == {D["ap_project"]: section}


def test_section_after_create_when_the_operator_asks_for_it(make_sync, asana, bills_flow):
    section = D["ap_sections"]["awaiting_approval"]
    bills_flow.asana_section_gid = section
    bills_flow.options = {**bills_flow.options, "section_at_create": False}
    bills_flow.save()
    make_sync(bills_flow).process("Bill", "000001")
    assert writes(asana) == [("POST", "/tasks"), ("POST", f"/sections/{section}/addTask")]
    ((gid, task),) = tasks_in_project(asana).items()
    assert task["sections"] == {D["ap_project"]: section}
