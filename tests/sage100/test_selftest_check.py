"""`connector check` runs the agent's selftest through the connector's client (issue 19): a healthy agent
passes; a BOI install missing a method gets one line naming it and what to configure; a key without the
selftest scope is told so."""

from __future__ import annotations

from datetime import date

from integrations.flows.checks import check_connection
from sage100_agent.boi import BOIBackend
from sage100_agent.config import BOIConfig, from_dict
from sage100_agent.ledger import Ledger
from sage100_agent.server import create_app, start_in_thread
from tests.sage100_agent.fake_com import FakeSage

from .conftest import API_KEY, SECRET, agent_config, make_connection


def _text(results) -> str:
    return " | ".join(f"{r.what}: {'ok' if r.ok else 'FAIL'}: {r.detail}" for r in results)


def test_check_runs_the_selftest_on_a_healthy_agent(tenant, agent):
    results = check_connection("sage100", make_connection(tenant, agent.url))
    assert all(r.ok for r in results), _text(results)
    [line] = [r for r in results if r.what == "agent selftest"]
    assert "backend simulated" in line.detail and "found" in line.detail


def test_check_names_a_missing_boi_method_and_what_to_configure(tenant, tmp_path):
    sage = FakeSage("late")
    sage.next_po_method = "nGetNextPONo"  # the install's name differs from the inferred default
    backend = BOIBackend(
        BOIConfig(home="h", user="agent", password="pw", pool_size=1),
        "ABC",
        Ledger(str(tmp_path / "boi.sqlite3")),
        com_factory=sage.script,
        com_init=lambda: None,
        today=lambda: date(2025, 3, 1),
    )
    agent = start_in_thread(create_app(agent_config(tmp_path), backend=backend), port=0)
    try:
        results = check_connection("sage100", make_connection(tenant, agent.url))
    finally:
        agent.stop()
    summary = next(r for r in results if r.what == "agent selftest")
    assert not summary.ok and "1 problem(s)" in summary.detail, _text(results)
    [problem] = [r for r in results if r.what.startswith("selftest ")]
    assert problem.what == "selftest PO_PurchaseOrder_bus method nGetNextPurchaseOrderNo"
    assert "MISSING" in problem.detail and "[boi.methods] next_po_number" in problem.detail
    assert sage.pos == {} and sage.next_po == 100  # check wrote nothing and consumed no number


def test_check_explains_a_key_without_the_selftest_scope(tenant, tmp_path):
    config = from_dict(
        {
            "agent": {"backend": "simulated", "ledger_path": str(tmp_path / "l.sqlite3")},
            "server": {"host": "127.0.0.1", "allow_plain_http": True},
            "simulated": {"state_path": str(tmp_path / "s.sqlite3")},
            "auth": {
                "clients": [
                    {"name": "c", "api_key": API_KEY, "hmac_secret": SECRET, "scopes": ["read", "po:create"]}
                ]
            },
        },
        env={},
    )
    agent = start_in_thread(create_app(config), port=0)
    try:
        results = check_connection("sage100", make_connection(tenant, agent.url))
    finally:
        agent.stop()
    line = next(r for r in results if r.what == "agent selftest")
    assert not line.ok and "selftest scope" in line.detail
