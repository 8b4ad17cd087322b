"""Value types and the error type shared by the agent's HTTP layer and its backends.

Everything here is plain data (dataclasses, ``Decimal``) so a backend can be written without knowing
anything about HTTP, and the HTTP layer can render any backend's result the same way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

# --- errors -------------------------------------------------------------------------------------------

#: code -> (HTTP status, retryable). The table of docs/sage100-agent.md §5 (reference sage100.md §9).
ERROR_CODES: dict[str, tuple[int, bool]] = {
    "VALIDATION_ERROR": (400, False),
    "AUTH_INVALID": (401, False),
    "AUTH_FORBIDDEN": (403, False),
    "NOT_FOUND": (404, False),
    "METHOD_NOT_ALLOWED": (405, False),
    "DUPLICATE_EXTERNAL_ID": (409, False),
    "IDEMPOTENCY_CONFLICT": (409, False),
    "IDEMPOTENCY_IN_FLIGHT": (409, True),
    "PAYLOAD_TOO_LARGE": (413, False),
    "SAGE_VALIDATION": (422, False),
    "RECORD_LOCKED": (423, True),
    "RATE_LIMITED": (429, True),
    "INTERNAL_ERROR": (500, False),
    "SAGE_LOGIN_FAILED": (502, False),
    "SAGE_COM_ERROR": (502, True),
    "SAGE_BUSY": (503, True),
    "SAGE_PAUSED": (503, True),
    "TIMEOUT": (504, True),
}


class AgentError(Exception):
    """One failure, rendered as the JSON error envelope.

    ``{"error": {"code", "message", "retryable", "step", "field", "sage_message", **extra}}``.
    ``retry_after`` (seconds) becomes a ``Retry-After`` header for retryable codes.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        step: str | None = None,
        field: str | None = None,
        sage_message: str | None = None,
        retry_after: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.message = message
        self.step = step
        self.field = field
        self.sage_message = sage_message
        self.retry_after = retry_after
        self.extra = extra or {}

    @property
    def status(self) -> int:
        return ERROR_CODES[self.code][0]

    @property
    def retryable(self) -> bool:
        return ERROR_CODES[self.code][1]

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
            "step": self.step,
            "field": self.field,
            "sage_message": self.sage_message,
        }
        body.update(self.extra)
        return {"error": body}


class UnknownOutcome(AgentError):
    """The write may or may not have been committed (timeout, COM failure after ``nWrite``).

    Rendered as 504 ``TIMEOUT``; the caller must look the PO up by external id before retrying.
    """

    def __init__(self, message: str, *, step: str = "write", sage_message: str | None = None) -> None:
        super().__init__("TIMEOUT", message, step=step, sage_message=sage_message)


# --- request values ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A warning kept alongside a successful result (Sage ``-1`` returns, agent-side truncation)."""

    step: str
    field: str | None
    message: str


@dataclass(frozen=True)
class JobRef:
    job_no: str
    cost_code: str = ""
    cost_type: str = ""


@dataclass(frozen=True)
class LineRequest:
    """One normalised PO line. ``item_code`` is already prefixed (``/C`` for comments, §2.3)."""

    kind: str  # inventory | misc | special | comment
    item_code: str
    description: str = ""
    comment_text: str = ""
    quantity: Decimal | None = None
    unit_cost: Decimal | None = None
    unit_of_measure: str = ""
    warehouse_code: str = ""
    gl_account: str = ""  # formatted, e.g. 6000-01-00 (resolved by the backend)
    gl_account_key: str = ""  # 9-character AccountKey, when the caller already knows it
    job: JobRef | None = None
    required_date: date | None = None


@dataclass(frozen=True)
class PurchaseOrderRequest:
    """A validated, normalised create request (see ``fields.parse_create_request``)."""

    external_id: str
    division: str
    vendor_no: str
    po_date: date
    lines: tuple[LineRequest, ...]
    required_date: date | None = None
    ship_to_code: str = ""
    warehouse_code: str = ""
    terms_code: str = ""
    comment: str = ""
    requisitioner: str = ""  # header RequisitorName (fields.REQUISITIONER_COLUMN)
    confirm_to: str = ""  # header ConfirmTo
    udf: dict[str, str] = field(default_factory=dict)
    #: UDFs declared numeric ([rules] numeric_udfs): written without ``$`` as numbers (ref §1.2)
    numeric_udfs: frozenset[str] = frozenset()


# --- results ------------------------------------------------------------------------------------------


@dataclass
class Vendor:
    division: str
    vendor_no: str
    name: str
    status: str  # Sage VendorStatus; the agent reports active = (status != "I") — codes are [U] §3
    terms_code: str = ""
    default_account_key: str = ""
    updated_at: str | None = None

    @property
    def active(self) -> bool:
        return self.status.upper() not in ("I", "D")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "id": f"{self.division}-{self.vendor_no}", "active": self.active}


@dataclass
class GLAccount:
    account_key: str
    account: str
    description: str
    status: str  # A / I / D (§4)
    main_account_code: str = ""
    account_type: str = ""

    @property
    def active(self) -> bool:
        return self.status == "A"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "active": self.active}


@dataclass
class POLine:
    line_key: str
    item_code: str
    item_type: str
    description: str
    quantity: Decimal
    unit_cost: Decimal
    extension_amt: Decimal
    gl_account_key: str = ""
    gl_account: str = ""
    warehouse_code: str = ""
    comment_text: str = ""
    job: JobRef | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("quantity", "unit_cost", "extension_amt"):
            data[key] = str(data[key])
        return data


@dataclass
class PurchaseOrder:
    po_number: str
    division: str
    vendor_no: str
    po_date: str
    status: str
    order_type: str
    external_id: str
    lines: list[POLine]
    updated_at: str | None  # UTC ISO-8601, converted from DateUpdated + TimeUpdated (§2.5)
    date_updated: str = ""  # raw Sage value, YYYYMMDD
    time_updated: str = ""  # raw Sage value, decimal hours
    vendor_name: str = ""
    comment: str = ""
    on_hold: bool = False
    udf: dict[str, str] = field(default_factory=dict)
    requisitioner: str = ""
    confirm_to: str = ""

    def total(self) -> Decimal:
        return sum((line.extension_amt for line in self.lines), Decimal("0.00"))

    def to_json(self, include_lines: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "po_number": self.po_number,
            "vendor": {"division": self.division, "vendor_no": self.vendor_no, "name": self.vendor_name},
            "po_date": self.po_date,
            "status": self.status,
            "order_type": self.order_type,
            "on_hold": self.on_hold,
            "external_id": self.external_id,
            "comment": self.comment,
            "requisitioner": self.requisitioner,
            "confirm_to": self.confirm_to,
            "udf": dict(self.udf),
            "totals": {"lines": len(self.lines), "amount": str(self.total())},
            "updated_at": self.updated_at,
            "sage_updated": {"date_updated": self.date_updated, "time_updated": self.time_updated},
        }
        if include_lines:
            data["lines"] = [line.to_json() for line in self.lines]
        return data


@dataclass
class CreateResult:
    """What ``create_purchase_order`` returns; ``po`` is the PO as stored (or previewed on dry run)."""

    po: PurchaseOrder
    warnings: list[Notice]
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        data = self.po.to_json()
        data["sage_updated_at"] = self.po.updated_at
        data["warnings"] = [asdict(w) for w in self.warnings]
        data["dry_run"] = self.dry_run
        return data


def iso_utc(moment: datetime) -> str:
    """``2025-03-01T14:30:30Z`` for an aware datetime."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
