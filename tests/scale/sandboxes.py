"""The sandbox Acumatica and Asana for the scale-out proof: served over real HTTP on loopback from
threads of the test process (so the test reads their state directly at the end), seeded with a few
hundred documents, and the tenant document that wires a deployment to them.
"""

from __future__ import annotations

import copy
import random
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sandbox import acumatica as acu_sim
from sandbox import asana as asana_sim
from sandbox import demo

D = asana_sim.DEMO
F = D["fields"]
VENDORS = ("ABCCONCRETE", "STEELWORKS", "RIVERLUMBER", "SUMMITELEC", "HEAVYRENT")
BILL_STATUSES = ("Balanced",) * 7 + ("On Hold",) * 2 + ("Pending Approval",)
PO_STATUSES = ("Open",) * 3 + ("On Hold", "Pending Approval")
TENANT = "scale"
PUSH_SECRET = "scale-out-push-secret-0001"
CREATE_LEASE_SECONDS = 8
# Acumatica access tokens live this long (the connector renews 60 s before expiry): every worker
# renews several times during a run, often at the same moment as another one.
TOKEN_LIFETIME = 63


def _serve(build):
    """Serve a simulator on an ephemeral loopback port; `build(base)` makes it once the port is known."""
    from waitress.server import create_server

    holder: dict[str, Any] = {}
    server = create_server(
        lambda env, start: holder["sim"].wsgi_app(env, start), host="127.0.0.1", port=0, threads=8
    )
    base = f"http://127.0.0.1:{server.effective_port}"
    holder["sim"] = build(base)
    threading.Thread(target=server.run, name=f"sandbox-{server.effective_port}", daemon=True).start()
    return holder["sim"], base, server


@dataclass
class Sandboxes:
    acumatica: Any
    asana: Any
    acumatica_url: str
    asana_url: str
    servers: list[Any] = field(default_factory=list)

    def close(self) -> None:
        for server in self.servers:
            server.close()


def start_sandboxes() -> Sandboxes:
    acu, acu_base, s1 = _serve(
        lambda base: acu_sim.build_demo(
            base + "/AcumaticaERP", release_polls=0, token_lifetime=TOKEN_LIFETIME
        )
    )
    asana, asana_base, s2 = _serve(lambda base: asana_sim.build_demo(base + "/api/1.0"))
    return Sandboxes(acu, asana, acu_base + "/AcumaticaERP", asana_base + "/api/1.0", [s1, s2])


def seed_documents(acu: Any, rng: random.Random, bills: int, purchase_orders: int) -> None:
    """Bills and POs in the states the flows pick up, on top of the demo company's own."""
    for n in range(bills):
        amount = round(rng.uniform(100, 50_000), 2)
        day = date(2026, 1, 5) + timedelta(days=rng.randrange(90))
        acu.add_bill(
            rng.choice(VENDORS),
            amount,
            status=rng.choice(BILL_STATUSES),
            vendor_ref=f"INV-{n:05d}",
            date_=day,
            due_date=day + timedelta(days=rng.choice((15, 30, 45))),
            description=f"Scale bill {n}",
        )
    for n in range(purchase_orders):
        acu.add_purchase_order(
            rng.choice(VENDORS),
            round(rng.uniform(500, 90_000), 2),
            status=rng.choice(PO_STATUSES),
            description=f"Scale PO {n}",
        )


def documents(acu: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, type, number) → the record, for every bill and PO in the sandbox."""
    with acu.lock:
        out = {("bill", t, n): dict(r) for (t, n), r in acu.records["Bill"].items()}
        out.update({("purchase_order", t, n): dict(r) for (t, n), r in acu.records["PurchaseOrder"].items()})
    return out


def expected_values(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """What the task's mapped custom fields must show for this record (as the sandbox stores them)."""
    if kind == "bill":
        return {
            F["amount"]: round(float(record["Amount"]), 2),
            F["vendor"]: record["Vendor"],
            F["due_date"]: record["DueDate"].date().isoformat(),
        }
    return {F["amount"]: round(float(record["OrderTotal"]), 2), F["vendor"]: record["VendorID"]}


def erp_reference(kind: str, doc_type: str, number: str) -> str:
    return f"{doc_type}/{number}"


def tenant_document(sandboxes: Sandboxes) -> dict[str, Any]:
    """The demo tenant's shape (`connector demo`), pointed at these sandboxes, with a PO flow added
    and no Sage 100 (this proof is about the Acumatica ↔ Asana flows and their shared rows)."""
    doc = copy.deepcopy(demo.tenant_document())
    doc["tenant"] = {"slug": TENANT, "name": "Scale-out proof", "active": True}
    doc["acumatica"].update(instance_url=sandboxes.acumatica_url, push_secret=PUSH_SECRET, max_concurrency=4)
    doc["asana"]["api_base_url"] = sandboxes.asana_url
    doc.pop("sage100")
    doc["value_mappings"] = []
    by_kind = {f["kind"]: f for f in doc["flows"]}
    bills = by_kind["acumatica_bills"]
    bills["options"] = {"create_lease_seconds": CREATE_LEASE_SECONDS}
    purchase_orders = {
        "name": "Purchase orders",
        "kind": "acumatica_purchase_orders",
        "asana_project_gid": D["ap_project"],
        "asana_section_gid": D["ap_sections"]["inbox"],
        "erp_reference_field_gid": F["erp_reference"],
        "status_filter": ["Open", "On Hold", "Pending Approval"],
        "task_name_template": "PO {OrderNbr} · {VendorID} · {OrderTotal}",
        "options": {"create_lease_seconds": CREATE_LEASE_SECONDS},
        "field_mappings": [
            {
                "source_path": "OrderTotal",
                "asana_field_gid": F["amount"],
                "cached_name": "Amount",
                "cached_type": "number",
                "precision": 2,
            },
            {
                "source_path": "VendorID",
                "asana_field_gid": F["vendor"],
                "cached_name": "Vendor",
                "cached_type": "text",
            },
        ],
    }
    doc["flows"] = [bills, purchase_orders, by_kind["asana_approvals"]]
    return doc
