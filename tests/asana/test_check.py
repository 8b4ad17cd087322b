"""`connector check --tenant` for Asana against the sandbox: what it verified, and how it fails."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations.models import AsanaConnection, Flow
from mappings.models import FieldMapping
from sandbox.asana import DEMO

F = DEMO["fields"]


def run_check() -> tuple[int, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("connector", "check", "--tenant", "acme", stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        code = exc.returncode
    return code, out.getvalue() + err.getvalue()


@pytest.fixture
def ap_flow(tenant):
    flow = Flow.objects.create(
        tenant=tenant,
        name="AP bills",
        kind=Flow.Kind.ACUMATICA_BILLS,
        asana_project_gid=DEMO["ap_project"],
        asana_section_gid=DEMO["ap_sections"]["inbox"],
        erp_reference_field_gid=F["erp_reference"],
    )
    for path, gid in (("Amount", F["amount"]), ("VendorID", F["vendor"]), ("DueDate", F["due_date"])):
        FieldMapping.objects.create(flow=flow, source_path=path, asana_field_gid=gid)
    return flow


def test_check_ok_says_what_it_verified(connection, ap_flow, mounted):
    code, text = run_check()
    assert code == 0, text
    assert "acts as ML Connector Bot (1200000000000002" in text
    assert "ML Demo Workspace (1200000000000001); the token user is a member" in text
    assert "readable: 'AP Bills'" not in text and "readable: 'AP Approvals'" in text
    assert "'Amount', number; precision 2" in text and "'ERP reference', text" in text
    assert "'Inbox'" in text
    stored = AsanaConnection.objects.get(pk=connection.pk)
    assert stored.last_check_ok is True and "token user" in stored.last_check_message
    assert DEMO["pat"] not in stored.last_check_message


def test_check_bad_pat_names_the_credential(connection, ap_flow, mounted):
    AsanaConnection.objects.filter(pk=connection.pk).update(personal_access_token="not-a-valid-token-000")
    code, text = run_check()
    assert code != 0
    assert "credentials: personal access token" in text and "401" in text
    assert "not-a-valid-token-000" not in text


def test_check_missing_project(connection, tenant, mounted):
    Flow.objects.create(
        tenant=tenant,
        name="PRs",
        kind=Flow.Kind.ASANA_PURCHASE_REQUESTS,
        asana_project_gid="1299999999999999",
    )
    code, text = run_check()
    assert code != 0
    assert "flow PRs: project 1299999999999999" in text and "does not know it" in text


def test_check_missing_mapped_field(connection, ap_flow, mounted):
    FieldMapping.objects.create(flow=ap_flow, source_path="PONumber", asana_field_gid=F["po_number"])
    code, text = run_check()
    assert code != 0
    assert f"field {F['po_number']} (mapping PONumber): not on the project" in text
    # The rest is still reported as verified.
    assert "'Amount', number; precision 2" in text


def test_check_wrong_connector_user_and_workspace(connection, mounted):
    AsanaConnection.objects.filter(pk=connection.pk).update(
        connector_user_gid=DEMO["users"]["alice"], workspace_gid="1288888888888888"
    )
    code, text = run_check()
    assert code != 0
    assert "but the connection says the connector's user is 1200000000000003" in text
    assert "not a member of workspace 1288888888888888" in text


def test_check_explains_402_and_read_only_fields(connection, ap_flow, mounted):
    mounted.custom_fields[F["vendor"]]["read_only"] = True
    code, text = run_check()
    assert code != 0 and "READ-ONLY" in text and "the connector cannot write it" in text
    mounted.custom_fields[F["vendor"]]["read_only"] = False
    mounted.faults.add(
        "status",
        method="GET",
        path="custom_field_settings",
        status=402,
        times=5,
        body={"errors": [{"message": "Custom fields are a premium feature."}]},
    )
    code, text = run_check()
    assert code != 0 and "Payment Required" in text and "premium" in text
