"""The sandbox Acumatica checked by a client nobody here wrote: easy-acumatica (PyPI), pointed at the
sandbox served on loopback (waitress, port 0, strict_contract=True: every request and response is also
checked against the vendor's spec). Each operation the connector or a person needs is run through it
and judged against what the real API does (reference/acumatica.md); ≥ 95 % must behave like the real
API, and every remaining difference is listed in SPEC_GAPS.md ("Acumatica sandbox vs. a third-party
client")."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from sandbox import acumatica as acu_sim
from sandbox.contract import ContractViolation

easy_acumatica = pytest.importorskip("easy_acumatica", reason='pip install -e ".[test]" (easy-acumatica)')
# Differences known and listed in SPEC_GAPS.md; anything else failing fails the test.
KNOWN_DIFFERENCES = {"generic inquiries (OData $metadata)"}


@pytest.fixture
def served(tmp_path):
    from waitress.server import create_server

    holder: dict[str, Any] = {}
    server = create_server(lambda e, s: holder["sim"].wsgi_app(e, s), host="127.0.0.1", port=0, threads=4)
    base = f"http://127.0.0.1:{server.effective_port}/AcumaticaERP"
    sim = acu_sim.build_demo(base, strict_contract=True, release_polls=None, operation_seconds=0.5)
    sim.violations = []
    handle = sim.handle

    def recording(req):
        try:
            return handle(req)
        except ContractViolation as exc:
            sim.violations.append(str(exc))
            raise

    sim.handle = recording
    holder["sim"] = sim
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield sim, base
    server.close()


def test_easy_acumatica_against_the_served_sandbox(served, tmp_path):
    from easy_acumatica.odata import QueryOptions

    sim, base = served
    results: dict[str, bool] = {}

    def check(name: str, operation: Callable[[], bool]) -> None:
        try:
            results[name] = bool(operation())
        except Exception as exc:  # noqa: BLE001 - a failing operation is a difference, reported below
            results[name] = False
            print(f"{name}: {type(exc).__name__}: {exc}"[:300])

    client = easy_acumatica.AcumaticaClient(
        base_url=base,
        username=acu_sim.DEMO_USER,
        password=acu_sim.DEMO_PASSWORD,
        tenant="Ridgeline",
        endpoint_version="24.200.001",
        cache_dir=tmp_path / "cache",
        auto_load_env=False,
        timeout=10,
    )
    log = [(m, p, s) for m, p, s in sim.request_log]
    check("list endpoints (GET /entity)", lambda: ("GET", "/entity", 200) in log)
    check("login (cookie)", lambda: ("POST", "/entity/auth/login", 204) in log and len(sim.sessions) == 1)
    check("swagger.json", lambda: ("GET", "/entity/Default/24.200.001/swagger.json", 200) in log)
    check("services built from the swagger", lambda: {"Bill", "PurchaseOrder"} <= set(client.list_services()))
    check(
        "generic inquiries (OData $metadata)",
        lambda: any("/api/odata/gi/$metadata" in p and s == 200 for _m, p, s in log),
    )
    bill, po = client.bill, client.purchase_order

    def listed() -> bool:
        rows = bill.get_list(
            QueryOptions(filter="Status eq 'Balanced'", select=["Type", "ReferenceNbr", "Amount"], top=10)
        )
        refs = {r.ReferenceNbr for r in rows} if rows and hasattr(rows[0], "ReferenceNbr") else None
        if refs is None:
            refs = {r["ReferenceNbr"]["value"] for r in rows}
        want = {k[1] for k, r in sim.records["Bill"].items() if r["Status"] == "Balanced"}
        return refs == want

    check("bill list with $filter/$select/$top", listed)

    def raw(obj: Any, field: str) -> Any:
        if isinstance(obj, dict):
            value = obj.get(field)
            return value.get("value") if isinstance(value, dict) else value
        return getattr(obj, field, None)

    got = {}
    check(
        "bill get by keys with $expand",
        lambda: (
            got.setdefault(
                "bill",
                bill.get_by_keys(
                    Type="Bill", ReferenceNbr="000001", options=QueryOptions(expand=["Details"])
                ),
            )
            and raw(got["bill"], "Vendor") == "ABCCONCRETE"
        ),
    )
    check(
        "bill get by id",
        lambda: raw(bill.get_by_id(sim.record("Bill", "Bill", "000004")["id"]), "ReferenceNbr") == "000004",
    )
    created = {}

    def put_bill() -> bool:
        created["bill"] = bill.put_entity(
            {
                "Type": {"value": "Bill"},
                "Vendor": {"value": "STEELWORKS"},
                "VendorRef": {"value": "EA-1"},
                "Hold": {"value": False},
                "Details": [{"Account": {"value": "50100"}, "Amount": {"value": 75.5}}],
            }
        )
        ref = raw(created["bill"], "ReferenceNbr")
        return sim.record("Bill", "Bill", ref)["Amount"] == 75.5

    check("bill put (create)", put_bill)

    def refused_without_vendor() -> bool:
        before = len(sim.records["Bill"])
        try:
            bill.put_entity({"Type": {"value": "Bill"}, "Description": {"value": "no vendor"}})
        except easy_acumatica.exceptions.AcumaticaError as exc:  # its 422 business-rule error
            return "[422]" in str(exc) and len(sim.records["Bill"]) == before
        return False

    check("bill without a vendor refused (422)", refused_without_vendor)

    def release() -> bool:
        ref = raw(created["bill"], "ReferenceNbr")
        invocation = {"entity": {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": ref}}}
        url = f"{base}/entity/Default/24.200.001/Bill/ReleaseBill"
        started = client.session.post(url, json=invocation, timeout=10)
        statuses = [started.status_code]
        while statuses[-1] == 202 and len(statuses) < 30:
            time.sleep(0.2)
            statuses.append(client.session.get(started.headers["Location"], timeout=10).status_code)
        return (
            statuses[0] == 202 and statuses[-1] == 204 and sim.record("Bill", "Bill", ref)["Status"] == "Open"
        )

    check("action ReleaseBill with 202 polling", release)

    def release_through_the_generated_method() -> bool:
        model = client.models.ReleaseBill if hasattr(client.models, "ReleaseBill") else None
        if model is None:
            return False
        bill.invoke_action_release_bill(model(entity=client.models.Bill(Type="Bill", ReferenceNbr="000004")))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and sim.record("Bill", "Bill", "000004")["Status"] != "Open":
            time.sleep(0.1)
        return sim.record("Bill", "Bill", "000004")["Status"] == "Open"

    check("action ReleaseBill through the generated method", release_through_the_generated_method)
    check(
        "bill $adHocSchema",
        lambda: "ReleaseBill" in {a["name"] for a in bill.get_ad_hoc_schema()["_workflowActions"]},
    )
    check(
        "purchase order list",
        lambda: len(po.get_list(QueryOptions(filter="Status eq 'Open'"))) == 1,
    )
    check(
        "purchase order get by keys",
        lambda: raw(po.get_by_keys(Type="Normal", OrderNbr="PO000001"), "VendorID") == "ABCCONCRETE",
    )
    check(
        "purchase order put (update)",
        lambda: (
            po.put_entity(
                {
                    "Type": {"value": "Normal"},
                    "OrderNbr": {"value": "PO000002"},
                    "Description": {"value": "EA"},
                }
            )
            is not None
            and sim.record("PurchaseOrder", "Normal", "PO000002")["Description"] == "EA"
        ),
    )

    def custom_value() -> bool:
        found = bill.get_by_keys(
            Type="Bill", ReferenceNbr="000001", options=QueryOptions(custom=["Document.InvoiceNbr"])
        )
        return found["custom"]["Document"]["InvoiceNbr"] == {"type": "CustomStringField", "value": "INV-7781"}

    check("bill get with $custom", custom_value)

    def paged() -> bool:
        first = bill.get_list(QueryOptions(select=["ReferenceNbr"], top=2))
        second = bill.get_list(QueryOptions(select=["ReferenceNbr"], top=2, skip=2))
        refs = [raw(r, "ReferenceNbr") for r in first + second]
        return refs == [k[1] for k in list(sim.records["Bill"])[:4]]

    check("paging with $top/$skip", paged)

    def roster() -> bool:
        employees = client.employee.get_list(
            QueryOptions(expand=["ContactInfo"], select=["EmployeeID", "ContactInfo/Email"])
        )
        first = employees[0] if isinstance(employees[0], dict) else employees[0].build()
        return set(first["ContactInfo"]) == {"Email"} and len(employees) == len(sim.records["Employee"])

    check("employees with $expand and nested $select", roster)
    check(
        "vendor get by keys",
        lambda: raw(client.vendor.get_by_keys(VendorID="RIVERLUMBER"), "VendorName") == "River Valley Lumber",
    )
    check("accounts list", lambda: len(client.account.get_list()) == len(sim.records["Account"]))
    check(
        "bill put (update: remove hold)",
        lambda: (
            bill.put_entity(
                {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000002"}, "Hold": {"value": False}}
            )
            is not None
            and sim.record("Bill", "Bill", "000002")["Status"] == "Balanced"
        ),
    )

    def deleted() -> bool:
        bill.delete_by_keys(Type="Bill", ReferenceNbr="000002")
        po.delete_by_id(sim.record("PurchaseOrder", "Normal", "PO000003")["id"])
        return (
            sim.record("Bill", "Bill", "000002") is None
            and sim.record("PurchaseOrder", "Normal", "PO000003") is None
        )

    check("delete by keys and by id", deleted)
    check("logout frees the seat", lambda: client.logout() == 204 and sim.control("seats")["in_use"] == 0)

    passed = [n for n, ok in results.items() if ok]
    failed = sorted(n for n, ok in results.items() if not ok)
    print(
        f"easy-acumatica: {len(passed)}/{len(results)} operations behave like the real API; differ: {failed}"
    )
    assert set(failed) <= KNOWN_DIFFERENCES, failed
    assert len(passed) / len(results) >= 0.95, f"{len(passed)}/{len(results)}"
    assert sim.overlaps == []
    assert not [v for v in sim.violations if "/api/odata/" not in v], sim.violations
