"""The demo firm every suite and `connector sandbox` start from."""

from __future__ import annotations

from typing import Any

from .seed import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER
from .simulator import AcumaticaSimulator


def build_demo(base_url: str, **kwargs: Any) -> AcumaticaSimulator:
    """A small construction firm: vendors, GL accounts, bills in every pre-release state, POs, staff.

    Credentials: OAuth client `DEMO_CLIENT_ID`/`DEMO_CLIENT_SECRET`, user `DEMO_USER`/`DEMO_PASSWORD`,
    tenant "Ridgeline".
    """
    sim = AcumaticaSimulator(base_url, tenant="Ridgeline", **kwargs)
    sim.add_oauth_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    sim.add_user(DEMO_USER, DEMO_PASSWORD)
    for cd, desc, kind in (
        ("20000", "Accounts Payable", "Liability"),
        ("50100", "Materials", "Expense"),
        ("50200", "Subcontractors", "Expense"),
        ("51000", "Equipment Rental", "Expense"),
        ("60100", "Office Supplies", "Expense"),
    ):
        sim.add_account(cd, desc, type=kind)
    for vid, name, vclass in (
        ("ABCCONCRETE", "ABC Concrete Supply", "MATERIALS"),
        ("STEELWORKS", "Tri-County Steelworks", "SUBCONTR"),
        ("RIVERLUMBER", "River Valley Lumber", "MATERIALS"),
        ("SUMMITELEC", "Summit Electrical Contractors", "SUBCONTR"),
        ("HEAVYRENT", "Heavy Equipment Rentals Inc.", "EQUIPMENT"),
    ):
        sim.add_vendor(vid, name, vendor_class=vclass)
    sim.add_bill("ABCCONCRETE", 18450.00, vendor_ref="INV-7781", description="Ready-mix concrete, Lot 14")
    sim.add_bill("STEELWORKS", 42300.50, vendor_ref="SW-2291", status="On Hold", description="Rebar package")
    sim.add_bill(
        "SUMMITELEC",
        12875.00,
        vendor_ref="SE-1043",
        status="Pending Approval",
        description="Rough-in electrical, Building B",
        details=[
            {"Account": "50200", "Amount": 12875.00, "TransactionDescription": "Rough-in", "Branch": "MAIN"}
        ],
    )
    sim.add_bill(
        "HEAVYRENT",
        3600.00,
        vendor_ref="HR-889",
        description="Excavator rental, March",
        details=[
            {"Account": "51000", "Amount": 3600.00, "TransactionDescription": "Excavator", "Branch": "MAIN"}
        ],
    )
    sim.add_bill(
        "RIVERLUMBER", 950.25, type="Credit Adj.", vendor_ref="RVL-CR-12", description="Returned studs"
    )
    sim.add_purchase_order("ABCCONCRETE", 25000.00, description="Foundation pour, Phase 2")
    sim.add_purchase_order("RIVERLUMBER", 8800.00, status="Pending Approval", description="Framing lumber")
    sim.add_purchase_order("STEELWORKS", 51000.00, status="On Hold", description="Structural steel")
    for eid, name, email, status in (
        ("EP00000001", "Maria Lopez", "maria.lopez@ridgeline.example", "Active"),
        ("EP00000002", "Dave Chen", "dave.chen@ridgeline.example", "Active"),
        ("EP00000003", "Priya Natarajan", "Priya.Natarajan@ridgeline.example", "Active"),
        ("EP00000004", "Tom Becker", "tom.becker@ridgeline.example", "Inactive"),
        ("EP00000005", "Site Trailer", None, "Active"),
    ):
        sim.add_employee(eid, name, email, status=status)
    return sim
