"""Constants, error bodies and value helpers shared by the Acumatica sandbox's modules."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from ..core import SimError, SimRequest, SimResponse

BUILD_VERSION = "24.208.0012"
VERSIONS = ("20.200.001", "22.200.001", "23.200.001", "24.200.001")
SPEC_VERSION = "24.200.001"
ENTITY_KEYS = {
    "Bill": ("Type", "ReferenceNbr"),
    "PurchaseOrder": ("Type", "OrderNbr"),
    "Employee": ("EmployeeID",),
    "Vendor": ("VendorID",),
    "Account": ("AccountCD",),
}
DETAIL_FIELDS = {
    "Bill": ("Details",),
    "PurchaseOrder": ("Details",),
    "Employee": (),
    "Vendor": (),
    "Account": (),
}
LINKED_FIELDS = {"Employee": ("ContactInfo",)}
ENTITIES = tuple(ENTITY_KEYS)
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
LOGIN_LIMIT_TEXT = "API Login Limit"
PUSH_QUERIES = {"Bill": "ML Connector: AP Bills", "PurchaseOrder": "ML Connector: Purchase Orders"}
# UNVERIFIED literal (reference §5.2 says only that other requests of the session fail meanwhile).
LONG_OPERATION_TEXT = "A long operation is still running in this session; wait for it to complete."


def http_error(message: str, exc_type: str = "PX.Data.PXException", status: int = 500) -> SimError:
    return SimError(
        status,
        {
            "message": "An error has occurred.",
            "exceptionMessage": message,
            "exceptionType": exc_type,
            "stackTrace": "   at PX.Api.ContractBased...",
        },
    )


def no_entity() -> SimError:
    """GET by key of a missing record: HTTP 500, not 404 (reference §6.1, PC)."""
    return http_error(
        "No entity satisfies the condition.", "PX.Api.ContractBased.NoEntitySatisfiesTheConditionException"
    )


def no_resource(url: str) -> SimError:
    """ASP.NET Web API's answer to a URL no route matches (reference §1.3: expect a 404)."""
    return SimError(404, {"message": f"No HTTP resource was found that matches the request URI '{url}'."})


def oauth_error(code: str, description: str = "") -> SimResponse:
    body = {"error": code}
    if description:
        body["error_description"] = description
    return SimResponse.json(body, 400)


def cookie(req: SimRequest, name: str) -> str | None:
    for part in (req.headers.get("Cookie") or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def as_datetime(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def wrap_value(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, datetime):
        return {"value": value.isoformat(timespec="milliseconds")}
    return {"value": value}


def wrap_fields(fields: dict) -> dict:
    return {k: (v if k == "id" else wrap_value(v)) for k, v in fields.items()}


def plain(body: dict) -> dict:
    """A request entity without wrappers (sandbox-side; independent of the client's values.py)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("custom", "rowNumber", "note", "_links", "error"):
            continue
        if key == "id":
            out[key] = value
        elif isinstance(value, list):
            out[key] = [plain(v) for v in value]
        elif isinstance(value, dict) and set(value) <= {"value", "error"}:
            out[key] = parse_value(value.get("value"))
        elif isinstance(value, dict):
            out[key] = plain(value)
    return out


def parse_value(value: Any) -> Any:
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def dac_title(entity: str) -> str:
    return {"Bill": "AP Transactions", "PurchaseOrder": "Purchase Order"}.get(entity, entity)


def ticks(moment: datetime) -> int:
    return int((moment - datetime(1, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)


def gi_row(entity: str, rec: dict) -> dict[str, Any]:
    """A flat Generic Inquiry row (not value-wrapped), columns as suggested in reference §7.5."""
    modified = rec.get("LastModifiedDateTime")
    stamp = modified.isoformat(timespec="milliseconds").replace("+00:00", "") if modified else None
    if entity == "Bill":
        return {
            "DocType": rec["Type"],
            "RefNbr": rec["ReferenceNbr"],
            "Status": rec.get("Status"),
            "Hold": rec.get("Hold"),
            "VendorID": rec.get("Vendor"),
            "CuryOrigDocAmt": rec.get("Amount"),
            "DueDate": rec["DueDate"].isoformat() if rec.get("DueDate") else None,
            "APInvoice_lastModifiedDateTime": stamp,
        }
    return {
        "OrderType": rec["Type"],
        "OrderNbr": rec["OrderNbr"],
        "Status": rec.get("Status"),
        "Hold": rec.get("Hold"),
        "VendorID": rec.get("VendorID"),
        "CuryOrderTotal": rec.get("OrderTotal"),
        "POOrder_lastModifiedDateTime": stamp,
    }
