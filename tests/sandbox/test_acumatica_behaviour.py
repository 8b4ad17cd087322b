"""The sandbox Acumatica behaves like Acumatica: long operations, seats, its clock, a person's edits,
the schema routes and the strictness of the real API (issue 13). Raw HTTP through the mounted sandbox,
every request and response checked against the vendor's spec (strict_contract)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from sandbox import acumatica as acu_sim

BASE = "https://erp.sandbox.test/ERP"
EP = f"{BASE}/entity/Default/24.200.001"
BILL_KEY = {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000001"}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock) -> Iterator[acu_sim.AcumaticaSimulator]:
    sim = acu_sim.build_demo(BASE, strict_contract=True, clock=clock, release_polls=None)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.mount(rsps)
        yield sim


def login(name: str = acu_sim.DEMO_USER) -> requests.Session:
    session = requests.Session()
    resp = session.post(
        f"{BASE}/entity/auth/login",
        json={"name": name, "password": acu_sim.DEMO_PASSWORD, "tenant": "Ridgeline"},
        timeout=5,
    )
    assert resp.status_code == 204, resp.text
    return session


def token() -> tuple[int, dict]:
    resp = requests.post(
        f"{BASE}/identity/connect/token",
        data={
            "grant_type": "password",
            "client_id": acu_sim.DEMO_CLIENT_ID,
            "client_secret": acu_sim.DEMO_CLIENT_SECRET,
            "username": acu_sim.DEMO_USER,
            "password": acu_sim.DEMO_PASSWORD,
            "scope": "api offline_access",
        },
        timeout=5,
    )
    return resp.status_code, resp.json()


def release(session: requests.Session, ref: str = "000001") -> requests.Response:
    body = {"entity": {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": ref}}}
    return session.post(f"{EP}/Bill/ReleaseBill", json=body, timeout=5)


# ---- long operations ----------------------------------------------------------------------------


def test_a_release_completes_on_its_own_and_overlaps_in_its_session_are_refused_and_recorded(sim, clock):
    releasing, other = login(), login()
    started = release(releasing)
    assert started.status_code == 202 and "/Bill/ReleaseBill/status/" in started.headers["Location"]

    # Another request of the same session while the release runs: refused, and recorded.
    refused = releasing.get(f"{EP}/Bill/Bill/000004", timeout=5)
    assert refused.status_code == 500 and "long operation" in refused.json()["exceptionMessage"]
    assert [o["request"] for o in sim.control("overlaps_seen")] == [
        "GET /entity/Default/24.200.001/Bill/Bill/000004"
    ]
    # Another session is not affected; the status URL answers 202 while it runs.
    assert other.get(f"{EP}/Bill/Bill/000004", timeout=5).status_code == 200
    assert releasing.get(started.headers["Location"], timeout=5).status_code == 202

    clock.now += timedelta(seconds=sim.operation_seconds)  # nobody polls any more
    assert sim.record("Bill", "Bill", "000001")["Status"] == "Open" or (
        releasing.get(f"{EP}/Bill/Bill/000001", timeout=5).json()["Status"]["value"] == "Open"
    )
    assert releasing.get(f"{EP}/Bill/Bill/000001", timeout=5).json()["Status"] == {"value": "Open"}
    assert releasing.get(started.headers["Location"], timeout=5).status_code == 204
    assert len(sim.overlaps) == 1  # nothing after completion counted as an overlap


def test_a_second_long_operation_in_the_session_is_an_overlap(sim):
    session = login()
    assert release(session).status_code == 202
    assert release(session, "000004").status_code == 500
    assert sim.record("Bill", "Bill", "000004")["Status"] == "Balanced"
    assert sim.overlaps[0]["request"].endswith("/Bill/ReleaseBill")
    assert sim.control("complete_long_operations") == 1
    assert release(session, "000004").status_code == 202


def test_the_status_of_another_sessions_operation_is_not_visible(sim):
    location = release(login()).headers["Location"]
    assert login().get(location, timeout=5).status_code == 500


# ---- seats -------------------------------------------------------------------------------------


def test_cookie_sessions_hold_seats_until_logout_or_idle_timeout(sim, clock):
    first, _second = login(), login()
    assert sim.control("seats")["in_use"] == 2
    refused = requests.post(
        f"{BASE}/entity/auth/login",
        json={"name": acu_sim.DEMO_USER, "password": acu_sim.DEMO_PASSWORD},
        timeout=5,
    )
    assert refused.status_code == 429 and "API Login Limit" in refused.text
    assert first.post(f"{BASE}/entity/auth/logout", timeout=5).status_code == 204
    assert sim.control("seats")["in_use"] == 1
    third = login()
    clock.now += timedelta(seconds=601)  # both idle longer than the 10-minute timeout (§2.2)
    assert sim.control("seats")["in_use"] == 0
    assert third.get(f"{EP}/Vendor/ABCCONCRETE", timeout=5).status_code == 401


def test_an_oauth_grant_holds_a_seat_for_its_hour_or_until_sign_out(sim, clock):
    status, first = token()
    assert status == 200 and sim.control("seats")["oauth_sessions"] == 1
    sim.control("hold_seats", n=1)  # another integration holds the other seat
    status, refused = token()
    assert status == 400 and refused["error_description"] == "API Login Limit"
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert requests.get(f"{EP}/Vendor/ABCCONCRETE", headers=bearer, timeout=5).status_code == 200
    clock.now += timedelta(seconds=3601)  # the session closes with its token (§2.1)
    assert sim.control("seats")["in_use"] == 1
    status, second = token()
    assert status == 200
    bearer = {"Authorization": f"Bearer {second['access_token']}"}
    assert requests.post(f"{BASE}/entity/auth/logout", headers=bearer, timeout=5).status_code == 204
    assert sim.control("seats") == {
        "limit": 2,
        "in_use": 1,
        "oauth_sessions": 0,
        "cookie_sessions": 0,
        "other_integrations": 1,
        "refused_logins": 1,
    }
    assert requests.get(f"{EP}/Vendor/ABCCONCRETE", headers=bearer, timeout=5).status_code == 401


def test_revoked_access_ends_the_session_and_the_refresh_chain(sim):
    _status, grant = token()
    assert sim.control("revoke_access", username=acu_sim.DEMO_USER) == 1
    assert sim.control("seats")["in_use"] == 0
    refreshed = requests.post(
        f"{BASE}/identity/connect/token",
        data={
            "grant_type": "refresh_token",
            "client_id": acu_sim.DEMO_CLIENT_ID,
            "client_secret": acu_sim.DEMO_CLIENT_SECRET,
            "refresh_token": grant["refresh_token"],
        },
        timeout=5,
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


# ---- the clock and a person ----------------------------------------------------------------------


def test_the_sandbox_clock_drives_modified_times_filters_and_the_date_header(sim, clock):
    session = login()
    clock.now += timedelta(minutes=10)
    sim.control("set_clock_offset", seconds=-3 * 60)  # three minutes behind the host
    edited = sim.control("person_edit_bill", type="Bill", nbr="000001", amount=19000.5, vendor_ref="INV-1")
    assert edited["LastModifiedDateTime"] == clock.now - timedelta(minutes=3)
    since = (clock.now - timedelta(minutes=4)).isoformat(timespec="milliseconds")
    page = session.get(
        f"{EP}/Bill", params={"$filter": f"LastModifiedDateTime gt datetimeoffset'{since}'"}, timeout=5
    )
    assert [b["ReferenceNbr"]["value"] for b in page.json()] == ["000001"]
    assert page.json()[0]["Amount"] == {"value": 19000.5} and page.json()[0]["VendorRef"] == {
        "value": "INV-1"
    }
    assert page.headers["Date"] == (clock.now - timedelta(minutes=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")


def test_a_persons_changes_are_pushed_and_a_deleted_number_can_be_entered_again(sim):
    received = []
    sim.deliver = lambda url, headers, body: (received.append(json.loads(body)), (200, {}, b""))[1]
    sim.control("configure_push", url="http://hook.test/", header_name="X-Secret", secret="s" * 12)
    sim.control("person_hold", type="Bill", nbr="000001", hold=True)
    sim.control("person_delete_bill", type="Bill", nbr="000001")
    sim.control("person_enter_bill", vendor="STEELWORKS", amount=12.5, reference_nbr="000001")
    sim.control("person_edit_purchase_order", type="Normal", nbr="PO000001", amount=26000)
    shapes = [
        (len(p["Inserted"]), len(p["Deleted"]), (p["Inserted"] or p["Deleted"])[0]["Status"])
        for p in received
    ]
    assert shapes == [(1, 1, "On Hold"), (0, 1, "On Hold"), (1, 0, "Balanced"), (1, 1, "Open")]
    assert sim.record("Bill", "Bill", "000001")["Vendor"] == "STEELWORKS"
    assert received[-1]["Inserted"][0]["CuryOrderTotal"] == 26000.0


def test_a_deleted_bill_is_gone_for_the_api(sim):
    session = login()
    sim.control("person_delete_bill", type="Bill", nbr="000004")
    missing = session.get(f"{EP}/Bill/Bill/000004", timeout=5)
    assert missing.status_code == 500 and "No entity satisfies" in missing.json()["exceptionMessage"]


# ---- routes and strictness ---------------------------------------------------------------------------


def test_swagger_and_ad_hoc_schema(sim):
    session = login()
    swagger = session.get(f"{EP}/swagger.json", timeout=5)
    assert swagger.status_code == 200 and swagger.json()["servers"] == [{"url": EP}]
    assert "/Bill/{ids}" in swagger.json()["paths"]
    assert requests.get(f"{EP}/swagger.json", timeout=5).status_code == 401
    assert requests.get(f"{EP}/swagger.json?company=Ridgeline", timeout=5).status_code == 200
    schema = session.get(f"{EP}/Bill/$adHocSchema", timeout=5).json()
    assert {"Amount", "Vendor", "VendorRef", "Details", "LastModifiedDateTime"} <= set(schema)
    actions = {a["name"] for a in schema["_workflowActions"]}
    assert {"ReleaseBill", "ReverseBill", "Approve", "Reject"} <= actions
    assert schema["custom"]["Document"]["InvoiceNbr"]["viewName"] == "Document"


def test_delete_by_keys_and_by_id(sim):
    session = login()
    assert session.delete(f"{EP}/Bill/Bill/000004", timeout=5).status_code == 204
    assert sim.record("Bill", "Bill", "000004") is None
    po = sim.record("PurchaseOrder", "Normal", "PO000001")
    assert session.delete(f"{EP}/PurchaseOrder/{po['id']}", timeout=5).status_code == 204
    assert sim.record("PurchaseOrder", "Normal", "PO000001") is None
    assert session.delete(f"{EP}/Bill/Bill/000004", timeout=5).status_code == 500  # no entity


def test_unknown_routes_and_methods_answer_as_acumatica(sim):
    sim.strict_contract = False  # these URLs are outside the spec on purpose
    session = login()
    missing = session.get(f"{BASE}/entity/Default/24.200.001/Customer", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["message"].startswith("No HTTP resource was found that matches the request URI")
    wrong = session.post(f"{EP}/Vendor/ABCCONCRETE", json={}, timeout=5)
    assert wrong.status_code == 405 and "does not support http method 'POST'" in wrong.json()["message"]
    ordered = session.get(f"{EP}/Bill", params={"$orderby": "ReferenceNbr"}, timeout=5)
    assert ordered.status_code == 400 and "$orderby" in ordered.json()["exceptionMessage"]


def test_a_bill_without_a_vendor_is_refused_with_the_entity_echoed(sim):
    session = login()
    before = len(sim.records["Bill"])
    body = {"Type": {"value": "Bill"}, "Description": {"value": "no vendor"}, "Hold": {"value": False}}
    refused = session.put(f"{EP}/Bill", json=body, timeout=5)
    assert refused.status_code == 422
    assert refused.json()["Vendor"]["error"] == "'Vendor' cannot be empty."
    assert "raised at least one error" in refused.json()["error"]
    assert len(sim.records["Bill"]) == before


def test_custom_and_nested_select(sim):
    session = login()
    bill = session.get(
        f"{EP}/Bill/Bill/000001",
        params={"$custom": "Document.InvoiceNbr", "$select": "Amount,Details/Amount", "$expand": "Details"},
        timeout=5,
    ).json()
    assert bill["custom"]["Document"]["InvoiceNbr"] == {"type": "CustomStringField", "value": "INV-7781"}
    assert set(bill) - {"id", "rowNumber", "custom", "_links"} == {"Amount", "Details"}
    assert set(bill["Details"][0]) == {"id", "rowNumber", "Amount"}
    employee = session.get(
        f"{EP}/Employee/EP00000001",
        params={"$expand": "ContactInfo", "$select": "EmployeeID,ContactInfo/Email"},
        timeout=5,
    ).json()
    assert employee["ContactInfo"] == {"Email": {"value": "maria.lopez@ridgeline.example"}}
    unknown = session.get(f"{EP}/Bill/Bill/000001", params={"$custom": "Document.UsrNope"}, timeout=5)
    assert unknown.status_code == 500


def test_the_controls_are_the_same_over_http(sim, clock):
    listed = requests.get(f"{BASE}/_sandbox/", timeout=5).json()["data"]
    assert {
        "person_enter_bill",
        "person_edit_bill",
        "person_delete_bill",
        "person_hold",
        "person_enter_purchase_order",
        "person_edit_purchase_order",
        "person_delete_purchase_order",
        "set_clock_offset",
        "advance_clock",
        "hold_seats",
        "seats",
        "revoke_access",
        "complete_long_operations",
        "long_operations",
        "overlaps_seen",
        "configure_push",
    } <= set(listed)
    entered = requests.post(
        f"{BASE}/_sandbox/person_enter_bill",
        json={"vendor": "HEAVYRENT", "amount": "410.25", "vendor_ref": "HR-900", "due_date": "2026-04-30"},
        timeout=5,
    )
    assert entered.status_code == 200, entered.text
    ref = entered.json()["data"]["ReferenceNbr"]
    stored = sim.record("Bill", "Bill", ref)
    assert (stored["Amount"], stored["VendorRef"], stored["DueDate"].date().isoformat()) == (
        410.25,
        "HR-900",
        "2026-04-30",
    )
    assert release(login(), ref).status_code == 202
    running = requests.post(f"{BASE}/_sandbox/long_operations", timeout=5).json()["data"]
    assert [[op["bill"], op["done"]] for op in running] == [[["Bill", ref], False]]
    requests.post(f"{BASE}/_sandbox/advance_clock", json={"seconds": sim.operation_seconds}, timeout=5)
    assert sim.record("Bill", "Bill", ref)["Status"] == "Open"  # completed on the clock, never polled


def test_files_attached_to_a_bill_are_listed_and_served(sim):
    import base64

    session = login()
    pdf = b"%PDF-1.4 invoice INV-7781\n" * 100
    modified = sim.record("Bill", "Bill", "000001")["LastModifiedDateTime"]
    put = session.put(
        f"{EP}/Bill/Bill/000001/files/INV-7781.pdf",
        data=pdf,
        headers={"Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert put.status_code == 204 and "/files/" in put.headers["Location"]
    added = sim.control(
        "person_attach_file",
        kind="bill",
        type="Bill",
        nbr="000001",
        filename="delivery-note.pdf",
        content_base64=base64.b64encode(b"%PDF-1.4 note").decode(),
    )
    bill = session.get(f"{EP}/Bill/Bill/000001", params={"$expand": "files"}, timeout=5).json()
    names = sorted(f["filename"] for f in bill["files"])
    assert names == [
        "Bills and Adjustments (Bill 000001)\\INV-7781.pdf",
        "Bills and Adjustments (Bill 000001)\\delivery-note.pdf",
    ]
    invoice = next(f for f in bill["files"] if f["filename"].endswith("INV-7781.pdf"))
    served = session.get(invoice["href"], timeout=5)
    assert served.status_code == 200 and served.content == pdf
    assert served.headers["Content-Type"] == "application/pdf"
    # The same name again replaces the content under the same file id (a new revision).
    session.put(f"{EP}/Bill/Bill/000001/files/INV-7781.pdf", data=b"%PDF-1.4 v2", timeout=5)
    assert session.get(invoice["href"], timeout=5).content == b"%PDF-1.4 v2"
    assert sim.record("Bill", "Bill", "000001")["LastModifiedDateTime"] == modified  # the form is unchanged
    assert "files" not in session.get(f"{EP}/Bill/Bill/000001", timeout=5).json()  # only with $expand
    sim.control("person_delete_bill", type="Bill", nbr="000001")
    assert sim.files == {} and added["size"] == len(b"%PDF-1.4 note")
    assert session.get(invoice["href"], timeout=5).status_code == 500  # no entity
