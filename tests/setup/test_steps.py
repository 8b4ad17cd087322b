"""Steps 1–3 of the setup wizard against the sandboxes: what each step asks, verifies and saves."""

from __future__ import annotations

import pytest

from integrations.models import AcumaticaConnection, AsanaConnection, Flow, SetupProgress, Tenant
from integrations.setup import steps
from mappings.models import FieldMapping, ValueMapping

from .conftest import ACU_URL, ASANA_URL, D, F, company_answers, writes

VENDOR_LIST = "1200000000000390"


def test_step1_offers_the_endpoint_versions_the_instance_lists(db, mounted, acu):
    endpoints = steps.discover_endpoints(ACU_URL)
    assert "24.200.001" in endpoints.default_versions()
    assert endpoints.preferred() == endpoints.default_versions()[-1]
    assert acu.request_log[-1][:2] == ("GET", "/entity")


def test_step1_creates_the_tenant_and_says_what_was_verified(db, mounted, acu):
    tenant, verdicts = steps.save_company(None, company_answers(endpoint_version="24.200.001"))

    assert all(v.ok for v in verdicts), [v.sentence for v in verdicts]
    said = "\n".join(v.sentence for v in verdicts)
    assert "Verified — instance reachable" in said and "Verified — authentication: signed in by OAuth" in said
    assert "Verified — read Bill" in said
    conn = AcumaticaConnection.objects.get(tenant=tenant)
    assert conn.client_secret and conn.last_check_ok is True and conn.endpoint_version == "24.200.001"
    assert "ReleaseBill" in conn.workflow_actions["Bill"]
    assert SetupProgress.objects.get(tenant=tenant).step == 2
    assert not writes(acu)  # a credential test reads only


def test_step1_a_refused_password_says_which_and_what_to_do(db, mounted):
    tenant, verdicts = steps.save_company(None, company_answers(password="wrong"))

    failed = [v for v in verdicts if not v.ok]
    assert [v.what for v in failed] == ["authentication"]
    assert "What to do: check the user, password" in failed[0].sentence
    assert SetupProgress.objects.get(tenant=tenant).step == 1  # not past step 1
    assert AcumaticaConnection.objects.get(tenant=tenant).last_check_ok is False
    # resumed with the right password: the stored secret is replaced, the blank ones kept
    _, verdicts = steps.save_company(
        tenant, company_answers(client_secret="", password=company_answers().password)
    )
    assert all(v.ok for v in verdicts) and SetupProgress.objects.get(tenant=tenant).step == 2


def test_step1_an_address_that_is_not_acumatica_is_refused_before_anything_is_saved(db, mounted):
    with pytest.raises(steps.StepError) as info:
        steps.save_company(None, company_answers(instance_url="https://erp.ridgeline.test/Nothing"))
    assert "did not answer as an Acumatica instance" in info.value.problems["instance_url"]
    assert not Tenant.objects.exists()


def test_step1_an_unlisted_version_is_refused_with_the_listed_ones(db, mounted):
    with pytest.raises(steps.StepError) as info:
        steps.save_company(None, company_answers(endpoint_version="17.200.001"))
    assert "24.200.001" in info.value.problems["endpoint_version"]


def test_step2_lists_the_workspaces_and_stores_the_token_user(db, mounted):
    tenant, _ = steps.save_company(None, company_answers())
    user = steps.asana_workspaces(ASANA_URL, D["pat"])
    assert (D["workspace"], "ML Demo Workspace") in user.workspaces and user.gid == D["connector_user"]

    steps.save_asana(tenant, ASANA_URL, D["pat"], D["workspace"])
    conn = AsanaConnection.objects.get(tenant=tenant)
    assert conn.connector_user_gid == D["connector_user"] and conn.personal_access_token == D["pat"]
    assert SetupProgress.objects.get(tenant=tenant).step == 3
    projects = dict(steps.flow_choices(tenant, "bills").projects)
    assert projects[D["ap_project"]] == "AP Approvals" and projects[D["pr_project"]] == "Purchase Requests"


def test_step2_a_refused_token_says_so(db, mounted):
    with pytest.raises(steps.StepError) as info:
        steps.asana_workspaces(ASANA_URL, "not-a-token")
    assert "Asana refused the token (401)" in info.value.problems["token"]


def _through_step2():
    tenant, _ = steps.save_company(None, company_answers())
    steps.save_asana(tenant, ASANA_URL, D["pat"], D["workspace"])
    return tenant


def test_step3_proposes_fields_by_name_and_type(db, mounted):
    """Vendor → an enum field when the project has one ("Vendor (list)"), before the text "Vendor"."""
    tenant = _through_step2()
    choices = steps.flow_choices(tenant, "bills", D["ap_project"])
    assert choices.proposal.fields == {
        "amount": F["amount"],
        "due_date": F["due_date"],
        "vendor": VENDOR_LIST,
        "reference": F["erp_reference"],
    }
    assert dict(choices.sections)[D["ap_sections"]["awaiting_approval"]] == "Awaiting approval"


def test_step3_refuses_a_type_mismatch_and_stores_nothing(db, mounted):
    tenant = _through_step2()
    with pytest.raises(steps.StepError) as info:
        steps.save_flow(
            tenant, "bills", D["ap_project"], "", {"amount": F["due_date"], "reference": F["erp_reference"]}
        )
    assert "'Due date' is a date field" in info.value.problems["field_amount"]
    assert not Flow.objects.filter(tenant=tenant).exists() and not FieldMapping.objects.exists()


def test_step3_matches_vendors_to_enum_options_and_saves_a_disabled_flow(db, mounted, asana):
    tenant = _through_step2()
    chosen = {
        "amount": F["amount"],
        "due_date": F["due_date"],
        "vendor": VENDOR_LIST,
        "reference": F["erp_reference"],
    }
    choices = steps.flow_choices(tenant, "bills", D["ap_project"], chosen)
    matched = {v.vendor_id: v.option_name for v in choices.proposal.vendors}
    assert matched == {
        "ABCCONCRETE": "ABC Concrete Supply",
        "STEELWORKS": "STEELWORKS",
        "RIVERLUMBER": "River Valley Lumber",
        "SUMMITELEC": "Summit Electrical",
        "HEAVYRENT": "",
    }
    before = len(asana.request_log)
    steps.save_flow(tenant, "bills", D["ap_project"], D["ap_sections"]["inbox"], chosen)

    flow = Flow.objects.get(tenant=tenant, kind="acumatica_bills")
    assert flow.enabled is False and flow.erp_reference_field_gid == F["erp_reference"]
    assert flow.asana_section_gid == D["ap_sections"]["inbox"]
    assert {m.source_path: m.asana_field_gid for m in flow.field_mappings.all()} == {
        "Amount": F["amount"],
        "DueDate": F["due_date"],
        "Vendor": VENDOR_LIST,
    }
    assert dict(ValueMapping.objects.filter(tenant=tenant).values_list("source_value", "target_value")) == {
        "ABCCONCRETE": "1200000000000391",
        "STEELWORKS": "1200000000000392",
        "RIVERLUMBER": "1200000000000393",
        "SUMMITELEC": "1200000000000394",
    }
    approvals = Flow.objects.get(tenant=tenant, kind="asana_approvals")
    assert approvals.enabled is False and approvals.approval_rule == "enum_option"
    assert approvals.approval_option_gid == D["options"]["approval_status"]["Approved"]
    assert not writes(asana, before)
    # back to the step: the page is filled from the saved rows
    again = steps.flow_choices(tenant, "bills")
    assert again.project_gid == D["ap_project"] and again.proposal.fields["vendor"] == VENDOR_LIST


def test_step3_skipping_purchase_orders_reaches_the_fit_report(set_up):
    tenant = set_up()
    assert SetupProgress.objects.get(tenant=tenant).step == 4
    assert not Flow.objects.filter(tenant=tenant, kind="acumatica_purchase_orders").exists()
