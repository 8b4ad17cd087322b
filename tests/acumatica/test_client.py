"""Client behaviour against the sandbox: discovery, paging, keys, PUT, errors and retries."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from integrations.acumatica.client import EndpointNotListed
from integrations.base import errors
from sandbox.acumatica import AcumaticaSimulator

from .conftest import INSTANCE, make_connection


def test_endpoint_base_url_includes_instance_path(connection, client):
    assert client.base_url == f"{INSTANCE}/entity/Default/24.200.001"
    assert client.url_for("/Bill") == f"{INSTANCE}/entity/Default/24.200.001/Bill"


def test_discovery_reads_build_and_accepts_a_listed_version(client):
    info = client.verify_endpoint()
    assert info.build_version == "24.208.0012"
    assert info.versions_of("Default") == ["20.200.001", "22.200.001", "23.200.001", "24.200.001"]


def test_unlisted_version_names_the_listed_ones(tenant, make_client):
    client = make_client(make_connection(tenant, endpoint_version="25.100.001"))
    with pytest.raises(EndpointNotListed) as info:
        client.verify_endpoint()
    assert "20.200.001, 22.200.001, 23.200.001, 24.200.001" in str(info.value)
    assert info.value.available[-1] == "24.200.001"


def test_bills_filter_by_watermark_and_status(client, mounted):
    base = datetime(2030, 5, 1, tzinfo=UTC)  # after the demo data, which is stamped "now"
    mounted.add_bill("ABCCONCRETE", 10.0, reference_nbr="900001", modified=base - timedelta(days=1))
    mounted.add_bill("ABCCONCRETE", 20.0, reference_nbr="900002", modified=base + timedelta(seconds=1))
    mounted.add_bill(
        "ABCCONCRETE", 30.0, reference_nbr="900003", status="On Hold", modified=base + timedelta(seconds=2)
    )
    found = list(client.iter_bills(modified_since=base, status_in=["Balanced", "Pending Approval"]))
    assert [b["ReferenceNbr"] for b in found] == ["900002"]
    assert found[0]["Vendor"] == "ABCCONCRETE" and "Details" not in found[0]


def test_paging_generator_over_1000_bills_holds_one_page(tenant, rsps, clock, limiter):
    from integrations.acumatica.client import client_for

    sim = AcumaticaSimulator(INSTANCE, strict_contract=True)
    sim.add_oauth_client("C1@Co", "secret-c1-value")
    sim.add_user("connector", "pw-connector-1")
    sim.add_vendor("V1", "Vendor One")
    for i in range(1000):
        sim.add_bill("V1", float(i + 1), reference_nbr=f"{i:06d}", details=[])
    sim.mount(rsps)
    conn = make_connection(
        tenant, client_id="C1@Co", client_secret="secret-c1-value", password="pw-connector-1"
    )
    client = client_for(conn, sleep=clock.sleep, clock=clock, rate_limiter=limiter)

    bills = client.iter_bills(select=("Type", "ReferenceNbr"), page_size=100)
    assert inspect.isgenerator(bills)

    def list_requests():
        return [p for m, p, _s in sim.request_log if m == "GET" and p.endswith("/Bill")]

    first = [next(bills) for _ in range(100)]
    assert len(list_requests()) == 1  # lazy: one page fetched for the first 100 records
    rest = list(bills)
    assert len(first) + len(rest) == 1000
    assert len({b["ReferenceNbr"] for b in first + rest}) == 1000
    assert len(list_requests()) == 11  # 10 full pages + the empty page that ends it (no count exists)
    skips = [c.request.url for c in rsps.calls if "/Bill?" in c.request.url]
    assert "$skip=900" in unquote(skips[-2]) and "$top=100" in skips[-1]


def test_streaming_1000_bills_keeps_memory_flat(tenant, rsps, clock, limiter, monkeypatch):
    """Peak memory while streaming 1,000 bills is about that of streaming one page: nothing accumulates."""
    import tracemalloc

    from integrations.acumatica.client import client_for

    sim = AcumaticaSimulator(INSTANCE, strict_contract=False)
    sim.add_oauth_client("C1@Co", "secret-c1-value")
    sim.add_user("connector", "pw-connector-1")
    sim.add_vendor("V1", "Vendor One")
    for i in range(1000):
        sim.add_bill("V1", float(i + 1), reference_nbr=f"{i:06d}", details=[])
    sim.mount(rsps)
    conn = make_connection(
        tenant, client_id="C1@Co", client_secret="secret-c1-value", password="pw-connector-1"
    )
    client = client_for(conn, sleep=clock.sleep, clock=clock, rate_limiter=limiter, recorder=lambda r: None)

    def peak_streaming(limit):
        tracemalloc.start()
        try:
            count = sum(1 for _ in zip(range(limit), client.iter_bills(page_size=100), strict=False))
            return count, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # The mock's call log and the sandbox's request log are the harness's memory, not the client's.
    import responses

    monkeypatch.setattr(responses.CallList, "add", lambda self, *args: None)
    monkeypatch.setattr(responses.CallList, "add_call", lambda self, *args: None)
    list(client.iter_bills(page_size=100))  # warm caches (auth, imports) outside the measurement
    one_page, peak_page = peak_streaming(100)
    everything, peak_all = peak_streaming(10_000)
    assert (one_page, everything) == (100, 1000)
    assert peak_all < peak_page * 1.5 + 256 * 1024, (peak_page, peak_all)


def test_get_by_key_encodes_spaces_and_dots(client, mounted, rsps):
    bill = client.get_bill("Credit Adj.", "000005")
    assert bill["Type"] == "Credit Adj." and bill["Vendor"] == "RIVERLUMBER"
    assert bill["Details"][0]["Account"] == "50100"  # $expand=Details by default on a single read
    assert any("/Bill/Credit%20Adj./000005?$expand=Details" in c.request.url for c in rsps.calls)


def test_get_by_key_with_a_slash_uses_a_filter(client, mounted):
    mounted.add_bill("ABCCONCRETE", 75.0, reference_nbr="AB/12")
    assert client.get_bill("Bill", "AB/12")["Amount"] == 75
    with pytest.raises(errors.NotFound):
        client.get_bill("Bill", "ZZ/99")


def test_missing_record_500_is_not_found_without_retry(client, mounted):
    with pytest.raises(errors.NotFound) as info:
        client.get_bill("Bill", "999999")
    assert info.value.status == 500
    assert "NoEntitySatisfiesTheConditionException" in info.value.vendor_code
    assert [s for _m, p, s in mounted.request_log if p.endswith("/999999")] == [500]


def test_put_create_and_update_send_the_conditional_headers(client, mounted, rsps):
    created = client.put_bill(
        {
            "Type": "Bill",
            "Vendor": "STEELWORKS",
            "VendorRef": "SW-9000",
            "Hold": True,
            "Description": "Anchor bolts",
            "Details": [
                {
                    "Account": "50100",
                    "Amount": 410.0,
                    "Branch": "MAIN",
                    "TransactionDescription": "Anchor bolts",
                }
            ],
        },
        mode="create",
    )
    ref = created["ReferenceNbr"]
    stored = mounted.record("Bill", "Bill", ref)
    assert stored["VendorRef"] == "SW-9000" and stored["Status"] == "On Hold" and stored["Amount"] == 410.0
    put = [c for c in rsps.calls if c.request.method == "PUT"][-1]
    assert put.request.headers["If-None-Match"] == "*" and "If-Match" not in put.request.headers

    updated = client.set_bill_hold("Bill", ref, False)
    assert updated["Status"] == "Balanced"
    put = [c for c in rsps.calls if c.request.method == "PUT"][-1]
    assert put.request.headers["If-Match"] == "*"
    assert len([k for k in mounted.records["Bill"] if k[1] == ref]) == 1

    with pytest.raises(errors.Conflict):
        client.put_bill({"Type": "Bill", "ReferenceNbr": "777777", "Hold": False}, mode="update")
    with pytest.raises(errors.Conflict):
        client.put_bill({"Type": "Bill", "ReferenceNbr": ref, "Hold": False}, mode="create")


def test_422_collects_header_and_detail_line_errors(client, mounted):
    before = len(mounted.records["Bill"])
    with pytest.raises(errors.Invalid) as info:
        client.put_bill(
            {
                "Type": "Bill",
                "Vendor": "NOSUCHVENDOR",
                "Hold": True,
                "Details": [
                    {"Account": "50100", "Amount": 1.0},
                    {"Account": "50200", "Amount": 2.0},
                    {"Account": "99999", "Amount": -3.0},
                ],
            },
            mode="create",
        )
    err = info.value
    assert err.status == 422
    assert err.field_errors == {
        "Vendor": "'Vendor' cannot be found in the system.",
        "Details[2].Account": "Account '99999' cannot be found in the system.",
        "Details[2].Amount": "'Amount' cannot be negative.",
    }
    assert "raised at least one error" in err.message
    assert len(mounted.records["Bill"]) == before  # nothing was created


def test_html_502_is_unavailable_with_a_readable_excerpt(client, mounted):
    mounted.faults.add("status", path=r"/Vendor/", status=502, times=10)
    with pytest.raises(errors.Unavailable) as info:
        client.get_vendor("ABCCONCRETE")
    assert "Service Unavailable" in info.value.body_excerpt and "<h1>" not in info.value.body_excerpt


def test_truncated_json_on_200_is_unexpected_response(client, mounted):
    client.auth.ensure()
    mounted.faults.add("status", path=r"/Vendor/", status=200, body='{"id": "1b0c", "VendorID": {"val')
    with pytest.raises(errors.UnexpectedResponse) as info:
        client.get_vendor("ABCCONCRETE")
    assert '"VendorID"' in info.value.body_excerpt


def test_429_storm_backs_off_then_succeeds(client, mounted, clock):
    client.auth.ensure()
    mounted.faults.add("status", path=r"/Vendor/", status=429, times=3)
    assert client.get_vendor("ABCCONCRETE")["VendorName"] == "ABC Concrete Supply"
    assert len(clock.sleeps) == 3  # our own backoff: Acumatica sends no Retry-After
    assert all(0 < s <= 5 for s in clock.sleeps)


def test_long_429_storm_raises_rate_limited_with_retry_after(client, mounted, clock):
    client.auth.ensure()
    mounted.faults.add("status", path=r"/Vendor/", status=429, times=100)
    with pytest.raises(errors.RateLimited) as info:
        client.get_vendor("ABCCONCRETE")
    assert info.value.retry_after and info.value.retry_after >= 5
    assert len(clock.sleeps) == client.max_retries


def test_record_lock_is_locked_and_retryable(client, mounted):
    mounted.lock_record("Bill", ("Bill", "000002"), times=100)
    with pytest.raises(errors.Locked) as info:
        client.set_bill_hold("Bill", "000002", False)
    assert info.value.retryable and "Another process has updated" in info.value.message
    assert mounted.record("Bill", "Bill", "000002")["Status"] == "On Hold"


def test_short_record_lock_is_retried_inline(client, mounted):
    mounted.lock_record("Bill", ("Bill", "000002"), times=1)
    assert client.set_bill_hold("Bill", "000002", False)["Status"] == "Balanced"


def test_employees_come_with_contact_email(client):
    employees = {e["EmployeeID"]: e for e in client.iter_employees()}
    assert employees["EP00000003"]["ContactInfo"]["Email"] == "Priya.Natarajan@ridgeline.example"
    assert employees["EP00000004"]["Status"] == "Inactive"
    assert employees["EP00000005"]["ContactInfo"]["Email"] is None


def test_purchase_orders_use_their_own_field_names(client):
    orders = list(client.iter_purchase_orders(status_in=["Open"]))
    assert orders and all(o["Status"] == "Open" for o in orders)
    po = client.get_purchase_order("Normal", orders[0]["OrderNbr"])
    assert po["VendorID"] == "ABCCONCRETE" and po["Branch"] == "MAIN"  # not Vendor / BranchID
    assert po["Details"][0]["BranchID"] == "MAIN"  # the detail line says BranchID


def test_accounts_and_vendors(client):
    assert [a["AccountCD"] for a in client.iter_accounts()][:2] == ["20000", "50100"]
    assert client.get_vendor("SUMMITELEC")["VendorName"] == "Summit Electrical Contractors"


def test_every_request_takes_and_returns_a_concurrency_slot(client, limiter):
    list(client.iter_bills())
    client.release_bill("Bill", "000001")
    assert limiter.acquired == limiter.released > 5
    assert limiter.max_seen == 1


def test_default_limiter_is_the_shared_budget_for_the_connection(connection, mounted):
    from integrations.acumatica.client import client_for

    client = client_for(connection)
    assert client.rate_limiter is not None
    assert client.rate_limiter.key == f"acumatica:{connection.pk}"
    assert client.rate_limiter.max_in_flight == connection.max_concurrency == 2
