"""Seeding the sandbox Acumatica: vendors, accounts, employees, bills, purchase orders, and the demo firm.

`add_*` write records as if they had always been there (no push notification); a person's later
changes go through people.py.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from .common import as_datetime

DEMO_CLIENT_ID = "3F2A7C1E-5B8D-4E6F-9A0B-1C2D3E4F5A6B@Ridgeline"
DEMO_CLIENT_SECRET = "demo-client-secret-ridgeline"
DEMO_USER = "connector"
DEMO_PASSWORD = "demo-password-ridgeline"


class SeedMixin:
    def add_vendor(
        self,
        vendor_id: str,
        name: str,
        *,
        status: str = "Active",
        vendor_class: str = "DEFAULT",
        **fields: Any,
    ) -> dict:
        """`vendor_class`: Vendor.VendorClass (AP303000's Vendor Class; every vendor has one, reference
        §3.4), read by the finance controls' tiers."""
        return self._store(
            "Vendor",
            {
                "VendorID": vendor_id,
                "VendorName": name,
                "VendorClass": vendor_class,
                "Status": status,
                "CurrencyID": "USD",
                **fields,
            },
            push=False,
        )

    def add_account(
        self,
        account_cd: str,
        description: str,
        *,
        type: str = "Expense",  # noqa: A002
        active: bool = True,
        **fields: Any,
    ) -> dict:
        n = self._next("account", 1000)
        return self._store(
            "Account",
            {
                "AccountCD": account_cd,
                "AccountID": n,
                "Description": description,
                "Type": type,
                "Active": active,
                **fields,
            },
            push=False,
        )

    def add_employee(
        self,
        employee_id: str,
        name: str,
        email: str | None,
        *,
        status: str = "Active",
        modified: datetime | None = None,
    ) -> dict:
        first, _, last = name.partition(" ")
        return self._store(
            "Employee",
            {
                "EmployeeID": employee_id,
                "EmployeeName": name,
                "Status": status,
                "ContactInfo": {"FirstName": first, "LastName": last, "Email": email},
            },
            modified=modified,
            push=False,
        )

    def add_bill(
        self,
        vendor: str,
        amount: float,
        *,
        type: str = "Bill",
        status: str = "Balanced",  # noqa: A002
        reference_nbr: str | None = None,
        vendor_ref: str | None = None,
        description: str = "",
        date_: date | None = None,
        due_date: date | None = None,
        details: list[dict] | None = None,
        requires_approval: bool = False,
        modified: datetime | None = None,
        branch: str = "MAIN",
        discount_date: date | None = None,
        discount_amount: float | None = None,
        created_by: str | None = None,
        **fields: Any,
    ) -> dict:
        """`discount_date`, `discount_amount` and `created_by` are APInvoice.DiscDate, CuryOrigDiscAmt and
        CreatedByID: not in the Default contract, read with `$custom=Document.DiscDate,…` (reference
        §4.1, §4.2)."""
        ref = reference_nbr or f"{self._next('Bill', 1):06d}"
        day = date_ or date(2026, 3, 2)
        lines = (
            details
            if details is not None
            else [
                {
                    "Account": "50100",
                    "Amount": amount,
                    "TransactionDescription": description or "Materials",
                    "Branch": branch,
                    "Qty": 1.0,
                    "UnitCost": amount,
                }
            ]
        )
        bill = {
            "Type": type,
            "ReferenceNbr": ref,
            "Status": status,
            "Hold": status == "On Hold",
            "Vendor": vendor,
            "VendorRef": vendor_ref,
            "Amount": amount,
            "Balance": amount,
            "Date": as_datetime(day),
            "DueDate": as_datetime(due_date or day + timedelta(days=30)),
            "Description": description,
            "BranchID": branch,
            "CurrencyID": "USD",
            "ApprovedForPayment": False,
            "PostPeriod": f"{day.month:02d}{day.year}",
            "Details": [dict(line) for line in lines],
            **fields,
        }
        document = {}
        if discount_date is not None:
            document["DiscDate"] = as_datetime(discount_date)
        if discount_amount is not None:
            document["CuryOrigDiscAmt"] = discount_amount
        if created_by is not None:
            document["CreatedByID"] = created_by
        if document:
            bill["custom"] = {"Document": document}
        if requires_approval or status == "Pending Approval":
            self.requires_approval.add((type, ref))
        return self._store("Bill", bill, modified=modified, push=False)

    def add_purchase_order(
        self,
        vendor_id: str,
        total: float,
        *,
        type: str = "Normal",  # noqa: A002
        status: str = "Open",
        order_nbr: str | None = None,
        description: str = "",
        details: list[dict] | None = None,
        modified: datetime | None = None,
        branch: str = "MAIN",
        **fields: Any,
    ) -> dict:
        nbr = order_nbr or f"PO{self._next('PurchaseOrder', 1):06d}"
        lines = (
            details
            if details is not None
            else [
                {
                    "LineNbr": 1,
                    "LineType": "Non-Stock",
                    "LineDescription": description or "Materials",
                    "OrderQty": 1.0,
                    "UnitCost": total,
                    "ExtendedCost": total,
                    "Account": "50100",
                    "BranchID": branch,
                }
            ]
        )
        po = {
            "Type": type,
            "OrderNbr": nbr,
            "Status": status,
            "Hold": status == "On Hold",
            "VendorID": vendor_id,
            "OrderTotal": total,
            "LineTotal": total,
            "Date": as_datetime(date(2026, 3, 1)),
            "Description": description,
            "Branch": branch,
            "CurrencyID": "USD",
            "Details": [dict(line) for line in lines],
            **fields,
        }
        if status == "Pending Approval" or fields.pop("requires_approval", False):
            self.requires_approval.add((type, nbr))
            po.pop("requires_approval", None)
        return self._store("PurchaseOrder", po, modified=modified, push=False)

    def record(self, entity: str, *keys: str) -> dict[str, Any] | None:
        """The stored record (plain values, not wrapped) or None; long operations due by now are done."""
        with self.lock:
            self.finish_due_operations()
            return self.records[entity].get(tuple(keys))
