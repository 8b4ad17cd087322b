"""Business documents on top of the generic client: bills, purchase orders, employees, vendors, accounts.

One small method per operation, each with the reference section it follows
(/work/shared/reference/acumatica.md). Mind the field-name asymmetries (§3, §8.8): `Bill.Vendor` vs
`PurchaseOrder.VendorID`, `Bill.BranchID` vs `PurchaseOrder.Branch` (and the reverse on detail lines),
PO key field `Type` (not OrderType); the line text is `TransactionDescription` (Bill) or
`LineDescription` (PO), while `Description` on a line is the account's description.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from . import values
from .values import Record

BILL_LIST_FIELDS = (
    "Type",
    "ReferenceNbr",
    "Status",
    "Hold",
    "Vendor",
    "VendorRef",
    "Amount",
    "Balance",
    "Date",
    "DueDate",
    "Description",
    "BranchID",
    "CurrencyID",
    "LastModifiedDateTime",
)
PO_LIST_FIELDS = (
    "Type",
    "OrderNbr",
    "Status",
    "Hold",
    "VendorID",
    "VendorRef",
    "OrderTotal",
    "Date",
    "PromisedOn",
    "Description",
    "Branch",
    "CurrencyID",
    "Owner",
    "LastModifiedDateTime",
)
EMPLOYEE_FIELDS = (
    "EmployeeID",
    "EmployeeName",
    "Status",
    "ContactInfo/Email",
    "ContactInfo/FirstName",
    "ContactInfo/LastName",
    "LastModifiedDateTime",
)
RELEASED_BILL_STATUSES = frozenset({"Open", "Closed"})


class DocumentsMixin:
    """Mixed into AcumaticaClient; relies on its get/iter/put/invoke_action/session_scope."""

    # ---- bills --------------------------------------------------------------------------------
    def get_bill(
        self,
        bill_type: str,
        reference_nbr: str,
        *,
        expand: Iterable[str] | str | None = ("Details",),
        select: Iterable[str] | str | None = None,
    ) -> Record:
        return self.get("Bill", (bill_type, reference_nbr), expand=expand, select=select)

    def iter_bills(
        self,
        *,
        modified_since: datetime | None = None,
        status_in: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        select: Iterable[str] | str | None = BILL_LIST_FIELDS,
        page_size: int = 100,
    ) -> Iterator[Record]:
        """Bills changed since a UTC watermark; list queries use top-level $select only (§8.4)."""
        return self.iter(
            "Bill",
            filter=_change_filter(modified_since, status_in, types),
            select=select,
            page_size=page_size,
        )

    def put_bill(
        self,
        fields: dict[str, Any],
        *,
        mode: str | None = None,
        custom: dict[str, Any] | None = None,
        expand: Iterable[str] | str | None = None,
    ) -> Record:
        return self.put("Bill", fields, mode=mode, custom=custom, expand=expand)

    def set_bill_hold(self, bill_type: str, reference_nbr: str, hold: bool) -> Record:
        return self.put(
            "Bill", {"Type": bill_type, "ReferenceNbr": reference_nbr, "Hold": hold}, mode="update"
        )

    def release_bill(self, bill_type: str, reference_nbr: str, *, deadline: float | None = None) -> Record:
        """ReleaseBill (Balanced → Open, §5.3), then re-read; already Open/Closed counts as done."""
        with self.session_scope():
            current = self.get_bill(bill_type, reference_nbr, expand=None, select=("Status",))
            if current.get("Status") in RELEASED_BILL_STATUSES:
                return self.get_bill(bill_type, reference_nbr)
            self.invoke_action(
                "Bill", "ReleaseBill", {"Type": bill_type, "ReferenceNbr": reference_nbr}, deadline=deadline
            )
            return self.get_bill(bill_type, reference_nbr)

    def approve_bill(self, bill_type: str, reference_nbr: str, *, deadline: float | None = None) -> Record:
        """Workflow action Approve (Pending Approval → Balanced), run by name (§5.4, UNVERIFIED on 24.200)."""
        with self.session_scope():
            self.invoke_action(
                "Bill", "Approve", {"Type": bill_type, "ReferenceNbr": reference_nbr}, deadline=deadline
            )
            return self.get_bill(bill_type, reference_nbr)

    # ---- purchase orders ------------------------------------------------------------------------
    def get_purchase_order(
        self, order_type: str, order_nbr: str, *, expand: Iterable[str] | str | None = ("Details",)
    ) -> Record:
        return self.get("PurchaseOrder", (order_type, order_nbr), expand=expand)

    def iter_purchase_orders(
        self,
        *,
        modified_since: datetime | None = None,
        status_in: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        select: Iterable[str] | str | None = PO_LIST_FIELDS,
        page_size: int = 100,
    ) -> Iterator[Record]:
        return self.iter(
            "PurchaseOrder",
            filter=_change_filter(modified_since, status_in, types),
            select=select,
            page_size=page_size,
        )

    # ---- employees, vendors, accounts -----------------------------------------------------------
    def iter_employees(
        self,
        *,
        modified_since: datetime | None = None,
        status_in: Iterable[str] | None = None,
        select: Iterable[str] | str | None = EMPLOYEE_FIELDS,
        page_size: int = 100,
    ) -> Iterator[Record]:
        """Employees with their e-mail: needs $expand=ContactInfo (§3.3)."""
        return self.iter(
            "Employee",
            filter=_change_filter(modified_since, status_in, None),
            select=select,
            expand="ContactInfo",
            page_size=page_size,
        )

    def get_employee(self, employee_id: str) -> Record:
        return self.get("Employee", (employee_id,), expand="ContactInfo")

    def get_vendor(self, vendor_id: str) -> Record:
        return self.get("Vendor", (vendor_id,))

    def iter_vendors(self, *, page_size: int = 100) -> Iterator[Record]:
        return self.iter(
            "Vendor", select=("VendorID", "VendorName", "Status", "LastModifiedDateTime"), page_size=page_size
        )

    def iter_accounts(self, *, active_only: bool = False, page_size: int = 200) -> Iterator[Record]:
        flt = values.cond("Active", "eq", True) if active_only else None
        return self.iter(
            "Account", filter=flt, select=("AccountCD", "Description", "Type", "Active"), page_size=page_size
        )


def _change_filter(
    modified_since: datetime | None, status_in: Iterable[str] | None, types: Iterable[str] | None
) -> str | None:
    return values.all_of(
        values.cond("LastModifiedDateTime", "gt", modified_since) if modified_since else None,
        values.any_of("Status", status_in) if status_in else None,
        values.any_of("Type", types) if types else None,
    )
