"""Shared URLs, headers and sample bodies for the contract tests (field names from shared/reference)."""

import json

ASANA = "https://app.asana.com/api/1.0"
ACU_INSTANCE = "https://erp.example.com/AcumaticaDB"
ACU = f"{ACU_INSTANCE}/entity/Default/24.200.001"
JSON = {"Content-Type": "application/json"}
JSON_UTF8 = {"Content-Type": "application/json; charset=utf-8"}
ASANA_HEADERS = {"Authorization": "Bearer test-token", **JSON}
GUID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def dumps(value) -> bytes:
    return json.dumps(value).encode()


ASANA_TASK = {
    "gid": "1200",
    "resource_type": "task",
    "resource_subtype": "approval",
    "name": "Bill 000123 - ACME Corp",
    "completed": False,
    "approval_status": "pending",
    "notes": "Amount 100.50 USD",
    "due_on": "2026-07-31",
    "permalink_url": "https://app.asana.com/0/123/1200",
    "projects": [{"gid": "123", "resource_type": "project", "name": "AP approvals"}],
    "custom_fields": [
        {
            "gid": "456",
            "resource_type": "custom_field",
            "name": "Amount",
            "resource_subtype": "number",
            "number_value": 100.5,
            "display_value": "100.5",
        }
    ],
    "memberships": [
        {"project": {"gid": "123", "name": "AP approvals"}, "section": {"gid": "9", "name": "Inbox"}}
    ],
}

BILL = {
    "id": GUID,
    "rowNumber": 1,
    "note": {"value": ""},
    "Type": {"value": "Bill"},
    "ReferenceNbr": {"value": "000123"},
    "Vendor": {"value": "V1"},
    "VendorRef": {"value": "INV-42"},
    "Amount": {"value": 100.5},
    "Balance": {"value": 100.5},
    "Status": {"value": "Balanced"},
    "Hold": {"value": False},
    "Date": {"value": "2026-01-15T00:00:00+00:00"},
    "DueDate": {"value": "2026-02-14T00:00:00+00:00"},
    "LastModifiedDateTime": {"value": "2024-12-18T17:07:45.433+00:00"},
    "Details": [
        {
            "id": "1a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "rowNumber": 1,
            "Account": {"value": "60000"},
            "Branch": {"value": "MAIN"},
            "TransactionDescription": {"value": "Office chairs"},
            "Qty": {"value": 2.0},
            "UnitCost": {"value": 50.25},
            "Amount": {"value": 100.5},
        }
    ],
    "custom": {},
    "_links": {"self": f"/AcumaticaDB/entity/Default/24.200.001/Bill/{GUID}"},
}

HTTP_ERROR = {
    "message": "An error has occurred.",
    "exceptionMessage": "No entity satisfies the condition.",
    "exceptionType": "PX.Api.ContractBased.NoEntitySatisfiesTheConditionException",
    "stackTrace": "   at PX.Api.ContractBased...",
}
