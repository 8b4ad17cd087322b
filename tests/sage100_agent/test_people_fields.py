"""The PO header's people: requisitioner (RequisitorName) and confirm-to (ConfirmTo), ref §2.2.

Parsed and length-checked alike for both backends, written by BOI after the vendor, stored and read back
by the Simulated backend, and carried through the HTTP contract."""

from __future__ import annotations

import pytest

from sage100_agent.fields import (
    CONFIRM_TO_COLUMN,
    REQUISITIONER_COLUMN,
    REQUISITIONER_LENGTH,
    FieldRules,
    parse_create_request,
)
from sage100_agent.model import AgentError

from .conftest import call, po_body


def parse(**overrides):
    return parse_create_request(po_body(**overrides), FieldRules())


def test_people_are_optional_and_trimmed():
    req, notices = parse()
    assert (req.requisitioner, req.confirm_to, notices) == ("", "", [])
    req, notices = parse(requisitioner="  bob  ", confirm_to="ALICE")
    assert (req.requisitioner, req.confirm_to, notices) == ("bob", "ALICE", [])


def test_long_names_are_truncated_with_a_warning():
    req, notices = parse(requisitioner="r" * 45, confirm_to="c" * 60)
    assert req.requisitioner == "r" * REQUISITIONER_LENGTH
    assert req.confirm_to == "c" * 50  # ConfirmTo is 50 (§2.2)
    fields = {n.field: n.message for n in notices}
    assert fields == {
        f"{REQUISITIONER_COLUMN}$": f"truncated from 45 to {REQUISITIONER_LENGTH} characters",
        f"{CONFIRM_TO_COLUMN}$": "truncated from 60 to 50 characters",
    }


def test_non_string_people_are_refused():
    with pytest.raises(AgentError) as exc:
        parse(requisitioner=123)
    assert (exc.value.status, exc.value.field) == (400, "requisitioner")


def test_the_requisitioner_length_is_overridable():
    rules = FieldRules()
    rules.lengths[REQUISITIONER_COLUMN] = (40, rules.lengths[REQUISITIONER_COLUMN][1])
    req, notices = parse_create_request(po_body(requisitioner="r" * 40), rules)
    assert req.requisitioner == "r" * 40 and not notices


# --- Simulated --------------------------------------------------------------------------------------


def test_simulated_stores_and_returns_people(sim):
    req, _ = parse(requisitioner="BOB", confirm_to="ALICE")
    created = sim.create_purchase_order(req)
    assert (created.po.requisitioner, created.po.confirm_to) == ("BOB", "ALICE")
    stored = sim.get_purchase_order(created.po.po_number)
    assert (stored.requisitioner, stored.confirm_to) == ("BOB", "ALICE")
    data = stored.to_json()
    assert (data["requisitioner"], data["confirm_to"]) == ("BOB", "ALICE")
    found = sim.find_by_external_id(req.external_id)
    assert found is not None and found.requisitioner == "BOB"


def test_simulated_without_people_returns_empty_strings(sim):
    created = sim.create_purchase_order(parse()[0])
    stored = sim.get_purchase_order(created.po.po_number)
    assert (stored.requisitioner, stored.confirm_to) == ("", "")


def test_simulated_dry_run_previews_people(sim):
    result = sim.create_purchase_order(parse(requisitioner="BOB", confirm_to="ALICE")[0], dry_run=True)
    assert result.dry_run and (result.po.requisitioner, result.po.confirm_to) == ("BOB", "ALICE")
    assert sim.count_pos() == 0


def test_http_create_and_get_carry_people(agent):
    reply = call(
        agent,
        "POST",
        "/v1/purchase-orders",
        po_body(requisitioner="BOB", confirm_to="C" * 55),
        idem="people-1",
    )
    assert reply.status == 201, reply.body
    body = reply.json
    assert body["requisitioner"] == "BOB" and body["confirm_to"] == "C" * 50
    assert {"step": "header", "field": "ConfirmTo$", "message": "truncated from 55 to 50 characters"} in body[
        "warnings"
    ]
    got = call(agent, "GET", f"/v1/purchase-orders/{body['po_number']}").json
    assert (got["requisitioner"], got["confirm_to"]) == ("BOB", "C" * 50)


# --- BOI against the sage COM -----------------------------------------------------------------------


def _boi_request(**overrides):
    body = po_body(**overrides)
    body["lines"] = [
        {
            "type": "misc",
            "item_code": "/SERVICES",
            "quantity": "1",
            "unit_cost": "10.00",
            "gl_account": "5000-01-00",
        }
    ]
    return parse_create_request(body, FieldRules())[0]


def test_boi_sets_people_after_the_vendor_and_reads_them_back(boi, sage):
    result = boi.create_purchase_order(_boi_request(requisitioner="BOB", confirm_to="ALICE"))
    sets = [a for m, a in sage.calls("PO_PurchaseOrder_bus") if m == "nSetValue"]
    vendor_at = sets.index("VendorNo$")
    assert sets.index("RequisitorName$") > vendor_at and sets.index("ConfirmTo$") > vendor_at
    values = {a[0]: a[1] for o, m, a in sage.log if o == "PO_PurchaseOrder_bus" and m == "nSetValue"}
    assert (values["RequisitorName$"], values["ConfirmTo$"]) == ("BOB", "ALICE")
    stored = sage.pos[result.po.po_number]
    assert (stored["RequisitorName$"], stored["ConfirmTo$"]) == ("BOB", "ALICE")
    assert (result.po.requisitioner, result.po.confirm_to) == ("BOB", "ALICE")
    again = boi.get_purchase_order(result.po.po_number)
    assert (again.requisitioner, again.confirm_to) == ("BOB", "ALICE")


def test_boi_leaves_people_unset_when_absent(boi, sage):
    result = boi.create_purchase_order(_boi_request())
    sets = [a for m, a in sage.calls("PO_PurchaseOrder_bus") if m == "nSetValue"]
    assert "RequisitorName$" not in sets and "ConfirmTo$" not in sets
    assert (result.po.requisitioner, result.po.confirm_to) == ("", "")


def test_boi_refusal_of_a_person_clears_the_order(boi, sage):
    sage.fail[("PO_PurchaseOrder_bus", "nSetValue", "ConfirmTo$")] = (0, "Invalid Confirm To.")
    with pytest.raises(AgentError) as exc:
        boi.create_purchase_order(_boi_request(confirm_to="ALICE"))
    assert exc.value.code == "SAGE_VALIDATION" and exc.value.field == "ConfirmTo$"
    assert ("nClear", None) in sage.calls("PO_PurchaseOrder_bus") and not sage.pos


def test_boi_dry_run_previews_people(boi, sage):
    result = boi.create_purchase_order(_boi_request(requisitioner="BOB", confirm_to="ALICE"), dry_run=True)
    assert result.dry_run and (result.po.requisitioner, result.po.confirm_to) == ("BOB", "ALICE")
    assert not sage.pos
