"""Captured vendor payloads (tests/fixtures/acumatica/, each with its `_source`) read by our code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

from integrations.acumatica.client import EndpointNotListed, client_for, collect_field_errors
from integrations.acumatica.values import unwrap
from sandbox.acumatica import build_demo

from .conftest import INSTANCE, make_connection

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "acumatica"


def load(name: str) -> dict:
    data = json.loads((FIXTURES / name).read_text())
    assert data.pop("_source")
    return data


def test_documented_422_echo_yields_the_detail_error():
    echo = load("bill_422__detail_project_error.json")
    assert collect_field_errors(echo) == {
        "Details[0].Project": "Project 'TES2323T  ' cannot be found in the system."
    }
    rec = unwrap(echo)
    assert rec.error.startswith("Inserting") and rec["Details"][0].field_errors == {
        "Project": "Project 'TES2323T  ' cannot be found in the system."
    }


def test_sandbox_push_has_the_documented_keys():
    documented = load("push__stock_item_update.json")
    sim = build_demo(INSTANCE)
    sent = []
    sim.deliver = lambda url, headers, body: sent.append(json.loads(body)) or (200, {}, b"")
    sim.configure_push("http://testserver/hooks/acumatica/x/", "X-Secret", "secret-value-1")
    sim.update_record("Bill", ("Bill", "000001"), Description="edited")
    assert set(sent[0]) == set(documented)
    assert type(sent[0]["TimeStamp"]) is type(documented["TimeStamp"])


@pytest.mark.parametrize(
    ("version", "ok"), [("24.200.001", True), ("25.200.001", True), ("25.100.001", False)]
)
def test_discovery_on_the_documented_listing(tenant, version, ok):
    conn = make_connection(tenant, endpoint_version=version)
    client = client_for(conn, rate_limiter=None, recorder=lambda r: None)
    with responses.RequestsMock() as rsps:
        rsps.get(f"{INSTANCE}/entity", json=load("entity__endpoint_list_build_25_093.json"))
        if ok:
            assert client.verify_endpoint().build_version == "25.093.0036"
        else:
            with pytest.raises(EndpointNotListed, match="25.200.001"):
                client.verify_endpoint()
