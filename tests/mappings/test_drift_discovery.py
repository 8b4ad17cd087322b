"""Drift (renamed / removed / retyped fields) and "Discover Asana fields" against the sandboxes."""

from __future__ import annotations

import contextlib

from django.core.management import call_command
from django.urls import reverse

from audit.models import AuditEntry
from integrations.flows.documents.poll import poll
from integrations.models import Flow, RecordLink
from mappings.discovery import apply_selection
from mappings.models import FieldMapping
from tests.flows.documents.test_documents_support import *  # noqa: F403
from tests.flows.documents.test_documents_support import D, F, tasks_in_project


def test_a_renamed_field_keeps_working_and_is_noted(make_sync, asana, bills_flow):
    asana.rename_field(F["vendor"], "Supplier")
    result = poll(make_sync())
    assert result.counts["created"] == 4
    mapping = FieldMapping.objects.get(flow=bills_flow, source_path="Vendor")
    assert (mapping.cached_name, mapping.status) == ("Supplier", "ok")
    note = AuditEntry.objects.get(operation="mapping_renamed")
    assert note.field_diff == {"cached_name": ["Vendor", "Supplier"]}
    assert all(asana.task_values(g)[F["vendor"]] for g in tasks_in_project(asana))


def test_a_removed_field_quarantines_only_its_records(make_sync, asana, acu, bills_flow):
    invoice = asana.add_custom_field("Vendor invoice", "text", projects=(D["ap_project"],))
    FieldMapping.objects.create(
        flow=bills_flow,
        source_path="VendorRef",
        asana_field_gid=invoice,
        cached_name="Vendor invoice",
        cached_type="text",
    )
    acu.add_bill("RIVERLUMBER", 120.0, vendor_ref=None, description="no vendor ref")  # 000006
    asana.remove_field_from_project(D["ap_project"], invoice)
    result = poll(make_sync())
    assert result.counts["created"] == 1, result.counts
    created = RecordLink.objects.get(state="linked")
    assert created.acumatica_ref == "000006"
    held = RecordLink.objects.filter(state="quarantined").exclude(acumatica_ref="000002")
    assert held.count() == 4
    assert all("no longer on the project" in link.state_reason for link in held)
    mapping = FieldMapping.objects.get(asana_field_gid=invoice)
    assert mapping.status == "broken" and "removed" in mapping.status_reason
    bills_flow.refresh_from_db()
    assert bills_flow.mapping_status == "broken" and "VendorRef" in bills_flow.mapping_status_reason


def test_a_changed_type_and_a_disabled_option_break_the_mapping(make_sync, asana, bills_flow):
    asana.change_field_type(F["amount"], "text")
    poll(make_sync())
    amount = FieldMapping.objects.get(flow=bills_flow, source_path="Amount")
    assert amount.status == "broken" and "number to text" in amount.status_reason
    status = FieldMapping.objects.get(flow=bills_flow, source_path="Status")
    assert status.status == "broken" and "'On Hold'" in status.status_reason
    assert not tasks_in_project(asana)  # every bill has an amount: all held, none written with a wrong type


def test_connector_check_reports_drift(bills_flow, mounted, asana, capsys):
    asana.remove_field_from_project(D["ap_project"], F["due_date"])
    with contextlib.suppress(BaseException):  # a failed check exits non-zero; the output is what we read
        call_command("connector", "check", "--tenant", "ridgeline")
    captured = capsys.readouterr()
    assert "mappings of AP bills" in captured.out + captured.err
    assert "removed from the project" in captured.out + captured.err


def test_discovery_refuses_type_mismatches_and_stores_gids(bills_flow, mounted, make_sync):
    specs = make_sync().refresh_specs()
    saved, refused = apply_selection(
        bills_flow, {"Amount": F["amount"], "Vendor": F["due_date"], "VendorRef": F["erp_reference"]}, specs
    )
    assert "Vendor" in refused and "date field" in refused["Vendor"]
    assert len(saved) == 2
    ref = FieldMapping.objects.get(flow=bills_flow, source_path="VendorRef")
    assert (ref.asana_field_gid, ref.cached_name, ref.cached_type) == (
        F["erp_reference"],
        "ERP reference",
        "text",
    )


def test_discover_fields_admin_view(admin_client, bills_flow, mounted):
    url = reverse("admin:integrations_flow_discover_fields", args=[bills_flow.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"Document status (enum)" in page.content and b"VendorRef" in page.content
    response = admin_client.post(url, {"field__Amount": F["amount"], "field__BranchID": F["amount"]})
    assert response.status_code == 200  # BranchID (text) → a number field is refused
    assert b"is a number field" in response.content
    response = admin_client.post(url, {"field__Amount": F["amount"], "field__VendorRef": F["vendor"]})
    assert response.status_code == 302
    assert FieldMapping.objects.get(flow=bills_flow, asana_field_gid=F["vendor"]).source_path == "VendorRef"


def test_sync_now_action_queues_a_pass(admin_client, bills_flow, monkeypatch):
    queued = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: queued.append(a))
    changelist = reverse("admin:integrations_flow_changelist")
    response = admin_client.post(changelist, {"action": "sync_now", "_selected_action": [bills_flow.pk]})
    assert response.status_code == 302
    from integrations.flows.documents.tasks import poll_flow

    assert queued == [(poll_flow, bills_flow.pk, "manual", "admin")]
    assert Flow.objects.get(pk=bills_flow.pk).enabled
