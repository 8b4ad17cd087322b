"""The Acumatica sandbox itself: push notifications, filters, seats, the demo firm, contract checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sandbox.acumatica import (
    DEMO_CLIENT_ID,
    AcumaticaSimulator,
    build_demo,
    parse_filter,
)
from sandbox.contract import ContractViolation

from .conftest import INSTANCE

PUSH_URL = "http://testserver/hooks/acumatica/3c0e3f0e-0000-4000-8000-000000000001/"


class Inbox:
    def __init__(self, statuses=()):
        self.received: list[tuple[str, dict, dict]] = []
        self.statuses = list(statuses)

    def __call__(self, url, headers, body):
        self.received.append((url, headers, json.loads(body)))
        return (self.statuses.pop(0) if self.statuses else 200), {}, b""


def test_push_on_bill_change_has_the_reference_shape(client, mounted):
    inbox = Inbox()
    mounted.deliver = inbox
    mounted.configure_push(PUSH_URL, "X-ML-Connector-Secret", "push-secret-123")
    client.set_bill_hold("Bill", "000002", False)
    assert len(inbox.received) == 1
    url, headers, payload = inbox.received[0]
    assert url == PUSH_URL and headers["X-ML-Connector-Secret"] == "push-secret-123"
    assert set(payload) == {"Query", "CompanyId", "Inserted", "Deleted", "Id", "TimeStamp", "AdditionalInfo"}
    assert payload["CompanyId"] == "Ridgeline" and isinstance(payload["TimeStamp"], int)
    # an update: the same key in both arrays, old values in Deleted, new in Inserted; rows are flat
    assert payload["Deleted"][0]["RefNbr"] == payload["Inserted"][0]["RefNbr"] == "000002"
    assert payload["Deleted"][0]["Status"] == "On Hold" and payload["Inserted"][0]["Status"] == "Balanced"
    assert not isinstance(payload["Inserted"][0]["Status"], dict)


def test_push_on_insert_and_after_release(client, mounted):
    inbox = Inbox()
    mounted.deliver = inbox
    mounted.configure_push(PUSH_URL, "X-Secret", "push-secret-123")
    created = client.put_bill(
        {
            "Type": "Bill",
            "Vendor": "ABCCONCRETE",
            "Hold": False,
            "Details": [{"Account": "50100", "Amount": 5.0}],
        },
        mode="create",
    )
    client.release_bill("Bill", created["ReferenceNbr"])
    kinds = [(bool(p["Deleted"]), p["Inserted"][0]["Status"]) for _u, _h, p in inbox.received]
    assert kinds == [(False, "Balanced"), (True, "Open")]


def test_push_duplicates_and_redelivery(client, mounted):
    inbox = Inbox(statuses=[500, 503])
    mounted.deliver = inbox
    mounted.configure_push(PUSH_URL, "X-Secret", "push-secret-123")
    mounted.force_duplicate_next()
    mounted.update_record("Bill", ("Bill", "000001"), Description="changed in the UI")
    ids = [p["Id"] for _u, _h, p in inbox.received]
    assert len(ids) == 4 and len(set(ids)) == 1  # two failed attempts re-sent, then a duplicate
    assert [e["status"] for e in mounted.push_log] == [500, 503, 200, 200]


def test_push_duplicate_probability_is_seeded():
    sim = build_demo(INSTANCE, seed=7)
    inbox = Inbox()
    sim.deliver = inbox
    sim.configure_push(PUSH_URL, "X-Secret", "s3cret-value", duplicate_probability=0.5)
    for i in range(20):
        sim.update_record("PurchaseOrder", next(iter(sim.records["PurchaseOrder"])), Description=f"v{i}")
    assert 20 < len(inbox.received) < 40
    assert {p["Query"] for _u, _h, p in inbox.received} == {"ML Connector: Purchase Orders"}


def test_filter_parser():
    rec = {
        "Status": "Balanced",
        "LastModifiedDateTime": datetime(2026, 1, 1, 12, tzinfo=UTC),
        "ContactInfo": {"Email": "a@b.example"},
        "Amount": 10.0,
    }
    assert parse_filter("Status eq 'Balanced' or Status eq 'Open'")(rec)
    assert parse_filter("LastModifiedDateTime gt datetimeoffset'2026-01-01T11:59:59.999+00:00'")(rec)
    assert parse_filter(
        "LastModifiedDateTime ge datetimeoffset'2026-01-01T13:00:00+01:00' and Status eq 'Balanced'"
    )(rec)  # 13:00+01:00 is 12:00 UTC
    assert not parse_filter("(Status eq 'Open' or Status eq 'Closed') and Amount gt 5")(rec)
    assert parse_filter("ContactInfo/Email eq 'a@b.example'")(rec)
    assert parse_filter("LastModifiedDateTime lt date'2026-01-02'")(rec)


def test_demo_firm_contents():
    sim = build_demo(INSTANCE)
    vendors = {k[0]: v["VendorName"] for k, v in sim.records["Vendor"].items()}
    assert vendors["ABCCONCRETE"] == "ABC Concrete Supply"
    statuses = {v["Status"] for v in sim.records["Bill"].values()}
    assert {"Balanced", "On Hold", "Pending Approval"} <= statuses
    assert len(sim.records["PurchaseOrder"]) == 3 and len(sim.records["Account"]) == 5
    assert DEMO_CLIENT_ID.endswith("@Ridgeline")


def test_strict_contract_rejects_a_request_the_spec_does_not_describe(client, mounted):
    client.auth.ensure()
    with pytest.raises(ContractViolation, match=r"\$orderby"):
        client.request("GET", "/Bill?$orderby=ReferenceNbr")
    with pytest.raises(ContractViolation, match="VendorID"):
        client.request("PUT", "/Bill", json_body={"VendorID": {"value": "ABCCONCRETE"}})


def test_wsgi_serving(sim):
    """`connector sandbox` serves the same simulator over WSGI."""
    import io

    seen = {}

    def start_response(status, headers):
        seen["status"] = status

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/AcumaticaERP/entity",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8123",
        "HTTP_HOST": "erp.ridgeline.test",
        "wsgi.input": io.BytesIO(),
    }
    body = b"".join(sim.wsgi_app(environ, start_response))
    assert seen["status"].startswith("200") and json.loads(body)["version"]["acumaticaBuildVersion"]


def test_every_entity_renders_valid_against_the_spec_with_expansions(client):
    """Strict mode validates each response; expanding everything exercises the nested schemas."""
    assert list(client.iter("Bill", expand="Details"))
    assert list(client.iter("PurchaseOrder", expand="Details"))
    assert list(client.iter("Employee", expand="ContactInfo"))
    assert list(client.iter("Vendor")) and list(client.iter("Account"))


def test_seat_helpers():
    sim = AcumaticaSimulator(INSTANCE, seat_limit=1)
    sim.add_user("u", "p" * 8)
    sim.occupy_seats(1)
    assert sim.seats_in_use == 1
