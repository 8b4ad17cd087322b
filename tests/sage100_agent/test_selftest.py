"""``selftest`` (issue 19): every BOI object, method and column checked without writing, on both COM
personalities; the table names what is missing and what to configure; HTTP (scoped) and CLI entry points."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

import pytest

from sage100_agent.__main__ import main
from sage100_agent.boi import BOIBackend
from sage100_agent.config import BOIConfig
from sage100_agent.fields import FieldRules, parse_create_request
from sage100_agent.ledger import Ledger

from .conftest import ADMIN_KEY, ADMIN_SECRET, READ_KEY, call, po_body

WRITES = {"nWrite", "nSetValue", "nAddLine", "nSetKey", "nClear", "nGetNextPurchaseOrderNo", "nGetNextPONo"}


def _seed_po(boi) -> None:
    body = po_body()
    body["lines"] = [body["lines"][0]]
    boi.create_purchase_order(parse_create_request(body, FieldRules())[0])


def _backend(sage, tmp_path, **cfg) -> BOIBackend:
    config = BOIConfig(home="h", user="agent", password="pw", pool_size=1, **cfg)
    return BOIBackend(
        config,
        "ABC",
        Ledger(str(tmp_path / f"st-{len(cfg)}.sqlite3")),
        tz=ZoneInfo("America/Chicago"),
        com_factory=sage.script,
        com_init=lambda: None,
        today=lambda: date(2025, 3, 1),
    )


def test_a_healthy_install_passes_and_nothing_is_written_or_consumed(boi, sage):
    _seed_po(boi)
    before = (dict(sage.pos), sage.next_po)
    mark = len(sage.log)
    report = boi.selftest()
    assert report.ok, report.table()
    assert {c.status for c in report.checks} == {"ok"}
    reads = {c.item: c.detail for c in report.checks if c.area == "read"}
    assert reads["vendor"] == "00-0000001 ABC Concrete Supply"
    assert reads["GL account"] == "5000-01-00 status A"  # the real status, through the ByRef output
    assert reads["next PO number"].startswith("0000101 ")
    assert (dict(sage.pos), sage.next_po) == before  # the next number was read, not consumed
    assert not WRITES & {m for _, m, _ in sage.log[mark:]}  # methods were looked up, never called
    table = report.table()
    assert "OK" in table.splitlines()[0] and "17 columns" in table and "To configure" not in table


def test_a_missing_next_number_method_is_named_with_what_to_configure(boi, sage, tmp_path):
    sage.next_po_method = "nGetNextPONo"  # this install calls it something else
    report = boi.selftest()
    assert not report.ok
    [missing] = [c for c in report.checks if c.status == "MISSING"]
    assert (missing.area, missing.item) == ("PO_PurchaseOrder_bus", "method nGetNextPurchaseOrderNo")
    assert "[boi.methods] next_po_number" in missing.fix and "NO public source" in missing.fix
    assert "PROBLEMS FOUND" in report.table() and "To configure:" in report.table()
    # Configured with the install's name, selftest passes and a PO gets the real number.
    fixed = _backend(sage, tmp_path, methods={"next_po_number": "nGetNextPONo"})
    try:
        assert fixed.selftest().ok
        body = po_body()
        body["lines"] = [body["lines"][0]]
        assert (
            fixed.create_purchase_order(parse_create_request(body, FieldRules())[0]).po.po_number == "0000100"
        )
    finally:
        fixed.close()


def test_a_missing_udf_column_and_lost_byref_outputs_are_reported(boi, sage, tmp_path):
    _seed_po(boi)
    sage.missing_columns.add(("PO_PurchaseOrder_svc", "UDF_ASANA_GID$"))
    report = boi.selftest()
    [udf] = [c for c in report.checks if c.status == "MISSING"]
    assert udf.item == "column UDF_ASANA_GID$" and "UDF Maintenance" in udf.fix
    if sage.personality == "late":  # by-value arguments lose every output on a late-bound object
        plain = _backend(sage, tmp_path, byref="plain")
        try:
            lost = [c for c in plain.selftest().checks if c.item == "ByRef outputs"]
            assert lost and lost[0].status == "FAILED" and 'byref = "variant"' in lost[0].fix
        finally:
            plain.close()


def test_a_logon_failure_is_a_finding_not_a_crash(boi, sage):
    sage.password = "changed"
    report = boi.selftest()
    assert not report.ok and report.checks[0].item == "logon"
    assert "Invalid user logon" in report.checks[0].detail


def test_selftest_over_http_is_scoped(agent):
    reply = call(agent, "GET", "/v1/selftest")  # the connector's key has the selftest scope
    assert reply.status == 200 and reply.json["ok"] is True
    assert [c["item"] for c in reply.json["checks"] if c["area"] == "read"] == [
        "vendor",
        "GL account",
        "next PO number",
    ]
    assert "selftest: backend simulated" in reply.json["table"]
    assert call(agent, "GET", "/v1/selftest", api_key=READ_KEY).status == 403
    assert call(agent, "GET", "/v1/selftest", api_key=ADMIN_KEY, secret=ADMIN_SECRET).status == 200
    assert agent.backend.count_pos() == 0


def test_cli_selftest_prints_the_table_and_sets_the_exit_code(tmp_path, capsys):
    toml = tmp_path / "agent.toml"
    toml.write_text(
        f"""
[agent]
backend = "simulated"
ledger_path = "{tmp_path / "l.sqlite3"}"
[server]
allow_plain_http = true
[simulated]
state_path = "{tmp_path / "s.sqlite3"}"
[[auth.clients]]
api_key = "{"k" * 20}"
hmac_secret = "{"s" * 40}"
"""
    )
    assert main(["selftest", "--config", str(toml), "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    assert "selftest: backend simulated, company ABC: OK" in out and "next PO number" in out
    assert main(["selftest", "--config", str(toml), "--json", "--log-level", "WARNING"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True


@pytest.mark.parametrize("personality", ["late"])
def test_dispatch_lookup_is_by_name_only(personality):
    from sage100_agent.selftest import has_member

    from .fake_com import FakeSage

    sage = FakeSage(personality)
    bus = sage.script().NewObject("PO_PurchaseOrder_bus")
    sage.log.clear()
    assert has_member(bus, "nGetNextPurchaseOrderNo") and not has_member(bus, "nNoSuchMethod")
    assert sage.log == [] and sage.next_po == 100
