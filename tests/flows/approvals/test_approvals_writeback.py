"""Custom-field changes flow back Asana → Acumatica for fields mapped that way, one source of truth per
field; GL accounts are never written."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from integrations.flows.approvals import writeback
from integrations.flows.inbound import watchdog
from mappings.models import FieldMapping
from tests.flows.inbound.harness import DEMO, World, mapping, world  # noqa: F401


@pytest.fixture
def wired(world: World):  # noqa: F811
    w = world
    project = DEMO["ap_project"]
    w.memo = w.asana.add_custom_field("Memo", "text", projects=(project,))
    w.hold = w.asana.add_custom_field("Hold it?", "enum", options=["Yes", "No"], projects=(project,))
    w.gl = w.asana.add_custom_field("GL account", "text", projects=(project,))
    flow = w.approvals_flow
    mapping(flow, "Description", w.memo, "text", direction="to_erp")
    mapping(flow, "Hold", w.hold, "enum", direction="to_erp", transform="bool")
    mapping(flow, "Details/Account", w.gl, "text", direction="to_erp")
    mapping(flow, "Amount", DEMO["fields"]["amount"], "number", direction="to_erp", precision=2)
    watchdog.ensure_webhooks(w.tenant, w.clients.asana)
    w.asana.deliver_pending_events()
    return w


def option(w: World, field: str, name: str) -> str:
    return next(g for g in w.asana.custom_fields[field]["options"] if w.asana.enum_options[g]["name"] == name)


def test_description_and_hold_are_written_back_only_when_changed(wired: World):
    w = wired
    bill = w.acumatica.add_bill("ABCCONCRETE", 300.0, description="old text")
    gid, _ = w.bill_task(bill)
    w.clock.now += 1
    w.asana.ui_update_task(
        gid,
        DEMO["users"]["carol"],
        custom_fields={w.memo: "Lot 14, phase 2", w.hold: option(w, w.hold, "Yes")},
    )
    w.asana.deliver_pending_events()
    stored = w.bill(bill["ReferenceNbr"])
    assert stored["Description"] == "Lot 14, phase 2"
    assert stored["Hold"] is True and stored["Status"] == "On Hold"
    entry = AuditEntry.objects.get(operation="bill.writeback")
    assert set(entry.field_diff) == {"Description", "Hold"}
    puts = [r for r in w.acumatica.request_log if r[0] == "PUT"]
    # Another field changes on the task: the written-back values are unchanged, nothing is sent.
    w.clock.now += 1
    w.asana.ui_update_task(gid, DEMO["users"]["carol"], custom_fields={DEMO["fields"]["vendor"]: "X"})
    w.asana.deliver_pending_events()
    assert [r for r in w.acumatica.request_log if r[0] == "PUT"] == puts


def test_gl_account_and_erp_owned_fields_are_refused_and_marked_broken(wired: World):
    w = wired
    bill = w.acumatica.add_bill("ABCCONCRETE", 300.0)
    gid, _ = w.bill_task(bill)
    w.clock.now += 1
    w.asana.ui_update_task(gid, DEMO["users"]["carol"], custom_fields={w.gl: "60100"})
    w.asana.deliver_pending_events()
    stored = w.bill(bill["ReferenceNbr"])
    assert stored["Details"][0]["Account"] == "50100"
    assert stored["Amount"] == 300.0
    broken = dict(FieldMapping.objects.filter(status="broken").values_list("source_path", "status_reason"))
    assert "never written" in broken["Details/Account"]
    assert "one source of truth" in broken["Amount"]


def test_refusal_rules():
    assert writeback.refusal(FieldMapping(source_path="ExpenseAccount"), set())
    assert writeback.refusal(FieldMapping(source_path="custom/Document/UsrJobCode"), set()) is None
    assert writeback.refusal(FieldMapping(source_path="Description"), {"Description"})
    assert writeback.refusal(FieldMapping(source_path="VendorRef"), set()) is None
