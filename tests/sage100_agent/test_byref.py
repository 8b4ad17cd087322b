"""Issue 19 item 1: BOI outputs marshalled as by-reference VARIANTs, read back on both COM personalities.

The ``sage`` fixture is parametrised (typed / late-bound), so each test here runs against both; the
``plain`` tests show what the by-value call loses on a late-bound object, which is why it is not used.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from sage100_agent.boi import BOIBackend
from sage100_agent.byref import OUT_NUM, OUT_STR, VT_BSTR, VT_BYREF, VT_R8, Marshaller
from sage100_agent.config import BOIConfig
from sage100_agent.fields import FieldRules, parse_create_request
from sage100_agent.ledger import Ledger
from sage100_agent.model import AgentError
from sage100_agent.server import create_app, start_in_thread

from .conftest import call, po_body
from .fake_com import FakeSage


def _request():
    body = po_body()
    body["lines"] = [body["lines"][0], body["lines"][2]]  # a misc line on 5000-01-00 and a comment
    return parse_create_request(body, FieldRules())[0]


def test_outputs_are_typed_by_reference_variants():
    marshaller = Marshaller()
    text, number = marshaller.arg(OUT_STR), marshaller.arg(OUT_NUM)
    assert (text.varianttype, text.value) == (VT_BYREF | VT_BSTR, "")
    assert (number.varianttype, number.value) == (VT_BYREF | VT_R8, 0.0)
    assert marshaller.arg("Status$") == "Status$"  # inputs pass unchanged


def test_a_late_bound_read_of_a_gl_account_returns_its_real_status(boi, sage):
    closed = boi.get_gl_account("6900-00-00")
    assert (closed.account_key, closed.status, closed.active) == ("00000007K", "I", False)
    assert closed.description == "Small Tools"
    assert boi.get_gl_account("5000-01-00").status == "A"
    vendor = boi.get_vendor("00", "0000001")
    assert (vendor.name, vendor.active, vendor.default_account_key) == (
        "ABC Concrete Supply",
        True,
        "00000002K",
    )
    assert boi.get_vendor("00", "0000099").active is False


def test_a_po_create_returns_the_real_number_and_reads_numbers_back(boi, sage):
    sage.next_po = 4711
    result = boi.create_purchase_order(_request())
    assert result.po.po_number == "0004711" and list(sage.pos) == ["0004711"]
    assert ("PO_PurchaseOrder_bus", "nSetKeyValue", ("PurchaseOrderNo$", "0004711")) in sage.log
    line = result.po.lines[0]
    assert (line.quantity, line.unit_cost, line.gl_account_key) == (
        Decimal("1.0"),
        Decimal("1500.0"),
        "00000004K",
    )
    assert result.po.external_id == "1209876543210987"


def test_the_agent_over_http_on_a_boi_backend(boi, sage, config):
    agent = start_in_thread(create_app(config, backend=boi, ledger=Ledger(config.ledger_path)), port=0)
    try:
        created = call(agent, "POST", "/v1/purchase-orders", po_body(lines=_request_lines()), idem="k")
        assert created.status == 201, created.body
        assert created.json["po_number"] == "0000100"
        account = call(agent, "GET", "/v1/gl-accounts/6900-00-00").json
        assert (account["status"], account["active"]) == ("I", False)
    finally:
        agent.stop()
    assert len(sage.pos) == 1


def _request_lines():
    body = po_body()
    return [body["lines"][0], body["lines"][2]]


def _plain_backend(sage: FakeSage, tmp_path) -> BOIBackend:
    cfg = BOIConfig(home="h", user="agent", password="pw", pool_size=1, byref="plain")
    return BOIBackend(
        cfg,
        "ABC",
        Ledger(str(tmp_path / "plain.sqlite3")),
        tz=ZoneInfo("America/Chicago"),
        com_factory=sage.script,
        com_init=lambda: None,
        today=lambda: date(2025, 3, 1),
    )


@pytest.mark.parametrize("personality", ["typed", "late"])
def test_plain_arguments_lose_every_output_on_a_late_bound_object(personality, tmp_path):
    sage = FakeSage(personality)
    backend = _plain_backend(sage, tmp_path)
    try:
        if personality == "typed":  # type information: the tuple carries the outputs
            assert backend.get_gl_account("6900-00-00").status == "I"
            assert backend.create_purchase_order(_request()).po.po_number == "0000100"
            return
        # Late-bound, by value: the read "succeeds" with nothing in it — the mismatch of issue 19.
        assert backend.get_gl_account("6900-00-00").status == ""
        assert backend.get_vendor("00", "0000001").name == ""
        with pytest.raises(AgentError, match="not active"):  # every GL account reads as inactive
            backend.create_purchase_order(_request())
        # The next number comes back empty: refused clearly (no IndexError, no empty key written).
        body = po_body(
            lines=[{"type": "inventory", "item_code": "REBAR-4", "quantity": "1", "unit_cost": "1"}]
        )
        with pytest.raises(AgentError, match="returned no number") as exc:
            backend.create_purchase_order(parse_create_request(body, FieldRules())[0])
        assert exc.value.code == "SAGE_VALIDATION" and sage.pos == {}
        assert ("nClear", None) in sage.calls("PO_PurchaseOrder_bus")
    finally:
        backend.close()
