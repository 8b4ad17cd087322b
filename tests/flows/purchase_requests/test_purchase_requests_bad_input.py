# ruff: noqa: F811  (pytest fixtures imported from tests.sage100.flow_harness)
"""Bad input ends in a clear, visible refusal: a comment on the task, the Error status, a quarantined
RecordLink with the reason and an AuditEntry — and no PO. Nothing is retried until the task changes."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from integrations.models import RecordLink
from mappings.models import ValueMapping
from tests.sage100.flow_harness import COST, OPT, F, pr_world  # noqa: F401


def refused(w, gid, fragment):
    result = w.process(gid)
    assert result.startswith("refused") or "refused" in result, result
    assert fragment in result
    assert w.backend.count_pos() == 0
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "quarantined" and fragment in link.state_reason
    entry = AuditEntry.objects.filter(record_link=link).exclude(operation="purchase_request.writeback").get()
    assert entry.status == "quarantined" and fragment in entry.error
    [comment] = w.comments(gid)
    assert comment.startswith("Not sent to Sage 100") and fragment in comment
    assert w.values(gid)[F["sage_status"]] == OPT["sage_status"]["Error"]
    return link


@pytest.mark.parametrize(
    ("task", "fragment"),
    [
        ({"vendor": "Nobody Ltd"}, "Unknown vendor 'Nobody Ltd'"),
        ({"vendor": "Ghost Supply"}, "does not exist in Sage 100"),
        ({"vendor": "Old Quarry"}, "is inactive in Sage 100"),
        ({"cost": COST["7000 Travel"]}, "GL account 6900-00-00 (Small Tools (closed)) is inactive"),
        ({"cost": None}, "no cost code"),
        ({"amount": 0}, "must be greater than zero"),
        ({"amount": -25.0}, "must be greater than zero"),
        ({"amount": None}, "no amount or unit cost"),
        ({"vendor": None}, "No vendor"),
    ],
)
def test_refusals(pr_world, task, fragment):
    w = pr_world
    gid = w.request_task(**task)
    refused(w, gid, fragment)


def test_malformed_segmented_account_is_refused(pr_world):
    w = pr_world
    ValueMapping.objects.filter(kind="cost_code", source_value=COST["6000 Services"]).update(
        target_value="600000"
    )
    gid = w.request_task(cost=COST["6000 Services"])
    refused(w, gid, "does not match the account format ####-##-##")


def test_job_cost_code_longer_than_sage_allows_is_refused(pr_world):
    w = pr_world
    ValueMapping.objects.filter(kind="cost_code", source_value=COST["6000 Services"]).update(
        target_value="5000-02-00|J000123|100-200-300-400|S"
    )
    gid = w.request_task(cost=COST["6000 Services"])
    refused(w, gid, "CostCode '100-200-300-400' is longer than Sage's 9 characters")


def test_refusal_is_not_repeated_until_the_task_changes_then_it_goes_through(pr_world):
    w = pr_world
    gid = w.request_task(vendor="Nobody Ltd")
    link = refused(w, gid, "Unknown vendor")
    assert w.process(gid).startswith("refused earlier and unchanged")
    assert len(w.comments(gid)) == 1
    w.asana.ui_update_task(gid, custom_fields={F["vendor"]: "ABC Concrete"})
    # the request changed after its approval: no PO until it is approved again (what was approved binds)
    assert w.process(gid).startswith("changed after approval")
    assert w.backend.count_pos() == 0
    w.approve(gid)
    assert w.process(gid) == "PO 0000100 created"
    link.refresh_from_db()
    assert link.state == "linked" and link.approved_snapshot["idempotency_key"].endswith("-po-v1")


def test_sage_refusal_after_a_refused_attempt_uses_a_new_key(pr_world, monkeypatch):
    """Sage refuses (422) what our checks let through; once the task is fixed, a new key is used (the
    agent would replay the refusal for the old key)."""
    from integrations.flows.purchase_requests import orders as pro

    w = pr_world
    monkeypatch.setattr(pro, "sage_problems", lambda sage, request: [])
    gid = w.request_task(cost=COST["7000 Travel"])
    result = w.process(gid)
    assert "Sage 100 refused the purchase order" in result and "inactive" in result
    link = RecordLink.objects.get(asana_task_gid=gid)
    assert link.state == "quarantined" and w.backend.count_pos() == 0
    w.asana.ui_update_task(gid, custom_fields={F["cost_code"]: COST["5000 Materials"]})
    # a changed request needs a new approval: the connector resets the old one and asks for it
    assert w.process(gid).startswith("changed after approval")
    w.approve(gid)
    assert w.process(gid) == "PO 0000100 created"
    link.refresh_from_db()
    assert link.approved_snapshot["idempotency_key"].endswith("-po-v2")


def test_long_description_is_cut_with_a_note_and_kept_whole_in_a_comment_line(pr_world):
    w = pr_world
    name = "Ready-mix concrete 4000 psi with fiber for the north footing pour"
    gid = w.request_task(name=name)
    assert w.process(gid) == "PO 0000100 created"
    po = w.sage_client.get_purchase_order("0000100")
    assert po["lines"][0]["description"] == name[:30]
    assert po["lines"][1]["item_code"] == "/C" and po["lines"][1]["comment_text"] == name
    [comment] = w.comments(gid)
    assert "cut to Sage's 30 characters" in comment


def test_inexact_unit_cost_is_refused_rather_than_rounded(pr_world):
    from integrations.flows.purchase_requests import plan as pr

    settings = pr.RequestSettings(
        fields={"Amount": "a", "Quantity": "q", "CostCode": "c", "VendorNo": "v"},
        vendors={"acme": "00-1"},
        cost_codes={"x": "6000-00-00"},
    )
    task = {
        "gid": "9",
        "name": "Bolts",
        "custom_fields": [
            {"gid": "a", "resource_subtype": "number", "number_value": 100},
            {"gid": "q", "resource_subtype": "number", "number_value": 3},
            {"gid": "c", "resource_subtype": "text", "text_value": "x"},
            {"gid": "v", "resource_subtype": "text", "text_value": "ACME"},
        ],
    }
    request, problems, _ = pr.build_request(task, [], settings)
    assert request is None and "not exact to 6 decimals" in problems[0]
