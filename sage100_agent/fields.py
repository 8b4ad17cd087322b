"""Sage 100 data rules the agent applies before any backend call.

Vendor-number normalisation (reference sage100.md §3), segmented GL account masks (§4), field lengths
(§2.2/§2.3), decimal-hours time stamps (§2.5) and the parsing of a create-PO request (§9). Both
backends receive the :class:`~.model.PurchaseOrderRequest` produced here, so they validate alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from .model import AgentError, JobRef, LineRequest, Notice, PurchaseOrderRequest

TRUNCATE = "truncate"  # descriptive text: cutting it loses detail but not meaning -> warning
REFUSE = "refuse"  # codes and identifiers: cutting them would point at another record -> 400

#: The PO header column for the requisitioner. ref §2.2 names it ``RequisitorName`` (next to
#: ``RequisitorDepartment``) but gives no length; the 30 below is UNVERIFIED (docs/sage100-agent.md §11).
#: Public BOI wrappers spell it the same way; if an install differs, change it here only.
REQUISITIONER_COLUMN = "RequisitorName"
REQUISITIONER_LENGTH = 30  # [U] — read the FLOR / ODBC metadata of the customer's version
#: ``ConfirmTo`` is 50 characters (ref §2.2).
CONFIRM_TO_COLUMN = "ConfirmTo"

#: Sage column -> (max length, policy). v4.40 layouts / later DDL (§2.2, §2.3); lengths vary by version,
#: so the operator can override them in agent.toml ``[field_lengths]``.
DEFAULT_FIELD_RULES: dict[str, tuple[int, str]] = {
    "PurchaseOrderNo": (7, REFUSE),
    "APDivisionNo": (2, REFUSE),
    "VendorNo": (7, REFUSE),
    "ShipToCode": (4, REFUSE),
    "WarehouseCode": (3, REFUSE),
    "TermsCode": (2, REFUSE),
    "Comment": (30, TRUNCATE),  # §2.2: Comment is 30 — too short for a URL, use a UDF
    # People's names on the header: free text, not keys into another table, so a cut loses detail only.
    CONFIRM_TO_COLUMN: (50, TRUNCATE),  # §2.2
    REQUISITIONER_COLUMN: (REQUISITIONER_LENGTH, TRUNCATE),  # §2.2 (length [U])
    "ItemCode": (30, REFUSE),
    "ItemCodeDesc": (30, TRUNCATE),
    "CommentText": (2048, TRUNCATE),  # memo; the cap only bounds request size
    "UnitOfMeasure": (4, REFUSE),
    "PurchasesAcctKey": (9, REFUSE),
    "Account": (41, REFUSE),
    "JobNo": (7, REFUSE),
    "CostCode": (9, REFUSE),
    "CostType": (1, REFUSE),
    "UDF_ASANA_GID": (30, REFUSE),  # §2.6: string, at least 20 characters on the customer's install
    "UDF": (30, REFUSE),  # any other UDF_* the caller passes
}

LINE_KINDS = ("inventory", "misc", "special", "comment")
_UDF_NAME = re.compile(r"^UDF_[A-Z0-9_]{1,30}$")
_MAX_LINES = 500


@dataclass
class FieldRules:
    lengths: dict[str, tuple[int, str]] = field(default_factory=lambda: dict(DEFAULT_FIELD_RULES))
    external_id_udf: str = "UDF_ASANA_GID"
    gl_account_mask: str = "####-##-##"
    #: UDFs whose Sage type is numeric (UDF Maintenance on the customer's install). Ref §1.2: column names
    #: ending in ``$`` are strings, numeric columns have no ``$`` — so these are written without it.
    numeric_udfs: frozenset[str] = frozenset()

    def check(self, column: str, value: str, step: str, notices: list[Notice]) -> str:
        """Return ``value`` fitted to ``column`` (truncated with a notice) or raise 400."""
        rule = self.lengths.get(column) or (self.lengths["UDF"] if column.startswith("UDF_") else None)
        if rule is None or len(value) <= rule[0]:
            return value
        limit, policy = rule
        if policy == TRUNCATE:
            notices.append(Notice(step, f"{column}$", f"truncated from {len(value)} to {limit} characters"))
            return value[:limit]
        raise AgentError(
            "VALIDATION_ERROR",
            f"{column} is {len(value)} characters; Sage allows {limit}; truncating would change its meaning",
            step=step,
            field=f"{column}$",
        )


# --- vendors (§3) -------------------------------------------------------------------------------------


def normalize_division(value: Any) -> str:
    """``APDivisionNo``: two digits, zero-filled; ``00`` when divisions are off (§3)."""
    text = str(value if value is not None else "").strip() or "00"
    if not text.isdigit() or len(text) > 2:
        raise AgentError("VALIDATION_ERROR", "division must be one or two digits", field="APDivisionNo$")
    return text.zfill(2)


def normalize_vendor_no(value: Any) -> str:
    """``VendorNo``: digits are zero-padded to 7 (``150`` -> ``0000150``); otherwise trimmed and upper-cased.

    §3 [V][S7]: "leading zeros are inserted automatically … If letters are used, no leading zeros".
    Upper-casing is [U] but matches every install seen; a value longer than 7 is refused (REFUSE policy).
    """
    text = str(value if value is not None else "").strip()
    if not text:
        raise AgentError("VALIDATION_ERROR", "vendor_no is required", field="VendorNo$")
    text = text.zfill(7) if text.isdigit() else text.upper()
    if len(text) > 7:
        raise AgentError("VALIDATION_ERROR", "vendor_no is longer than 7 characters", field="VendorNo$")
    return text


def parse_vendor_id(vendor_id: str) -> tuple[str, str]:
    """``01-ACME`` -> (``01``, ``ACME``). Split on the first ``-`` only (VendorNo may hold one, §3)."""
    division, sep, number = vendor_id.partition("-")
    if not sep:
        raise AgentError(
            "VALIDATION_ERROR", "vendor id must look like <division>-<vendor_no>", field="VendorNo$"
        )
    return normalize_division(division), normalize_vendor_no(number)


# --- GL accounts (§4) ---------------------------------------------------------------------------------


def mask_regex(mask: str) -> re.Pattern[str]:
    """``#`` digit, ``X`` letter or digit, else literal: ``####-##-##`` matches ``6000-01-00``."""
    parts = []
    for char in mask:
        parts.append({"#": "[0-9]", "X": "[A-Z0-9]"}.get(char, re.escape(char)))
    return re.compile("^" + "".join(parts) + "$")


def check_gl_account(account: str, mask: str, step: str) -> str:
    text = account.strip().upper()
    if not mask_regex(mask).match(text):
        raise AgentError(
            "VALIDATION_ERROR",
            f"GL account {account!r} does not match the segmented format {mask}",
            step=step,
            field="PurchasesAcctKey$",
        )
    return text


# --- change detection: DateUpdated + decimal-hours TimeUpdated (§2.5) --------------------------------


def decimal_hours_to_seconds(value: str | float | Decimal) -> int:
    """``"14.50833"`` -> 52230 (14:30:30). Rounded to the nearest second, clamped to the day."""
    try:
        hours = Decimal(str(value).strip() or "0")
    except InvalidOperation:
        raise ValueError(f"TimeUpdated {value!r} is not decimal hours") from None
    seconds = int((hours * 3600).to_integral_value())
    return max(0, min(seconds, 86399))


def seconds_to_decimal_hours(seconds: int) -> str:
    """52230 -> ``"14.50833"`` (five decimals, as Sage stores it; round-trips whole seconds exactly)."""
    return f"{Decimal(seconds) / Decimal(3600):.5f}"


def _parse_sage_date(value: str) -> date | None:
    text = (value or "").strip().replace("-", "")
    if not text or text.startswith("1753"):  # Premium stores empty dates as 1753-01-01 [O][S10]
        return None
    return datetime.strptime(text[:8], "%Y%m%d").date()


def localize(naive: datetime, tz: tzinfo | None) -> datetime:
    """Attach the Sage server's zone; ``None`` means the OS local zone (no tz database needed)."""
    return naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()


def sage_to_utc(date_updated: str, time_updated: str, tz: tzinfo | None) -> datetime | None:
    """Sage server-local (``DateUpdated``, ``TimeUpdated``) -> aware UTC datetime, or None when empty."""
    day = _parse_sage_date(date_updated)
    if day is None:
        return None
    naive = datetime(day.year, day.month, day.day) + timedelta(seconds=decimal_hours_to_seconds(time_updated))
    return localize(naive, tz).astimezone(UTC)


def utc_to_sage(moment: datetime, tz: tzinfo | None) -> tuple[str, str]:
    """Aware datetime -> Sage server-local (``YYYYMMDD``, decimal hours)."""
    local = moment.astimezone(tz) if tz is not None else moment.astimezone()
    seconds = local.hour * 3600 + local.minute * 60 + local.second
    return local.strftime("%Y%m%d"), seconds_to_decimal_hours(seconds)


def parse_utc(value: str, name: str) -> datetime:
    """Accept ISO-8601 with ``Z`` or an offset; a naive value is refused (it would be ambiguous)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AgentError("VALIDATION_ERROR", f"{name} must be ISO-8601", field=name) from None
    if moment.tzinfo is None:
        raise AgentError("VALIDATION_ERROR", f"{name} must carry a UTC offset (e.g. Z)", field=name)
    return moment.astimezone(UTC)


# --- create request (§9) ------------------------------------------------------------------------------


def _text(data: dict[str, Any], key: str, step: str) -> str:
    value = data.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AgentError("VALIDATION_ERROR", f"{key} must be a string", step=step, field=key)
    return value.strip()


def _date(data: dict[str, Any], key: str, step: str, required: bool = False) -> date | None:
    raw = data.get(key)
    if raw in (None, ""):
        if required:
            raise AgentError("VALIDATION_ERROR", f"{key} is required", step=step, field=key)
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise AgentError("VALIDATION_ERROR", f"{key} must be YYYY-MM-DD", step=step, field=key) from None


def _amount(data: dict[str, Any], key: str, column: str, step: str) -> Decimal:
    raw = data.get(key)
    if isinstance(raw, float) or raw is None:
        raise AgentError("VALIDATION_ERROR", f"{key} must be a decimal string", step=step, field=f"{column}")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise AgentError("VALIDATION_ERROR", f"{key} is not a number", step=step, field=column) from None
    if not value.is_finite() or value <= 0:
        raise AgentError("VALIDATION_ERROR", f"{key} must be greater than zero", step=step, field=column)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:  # UnitCost is (15,6); rounding would change the amount
        raise AgentError("VALIDATION_ERROR", f"{key} has more than 6 decimals", step=step, field=column)
    if value >= Decimal(10) ** 9:
        raise AgentError("VALIDATION_ERROR", f"{key} is too large", step=step, field=column)
    return value


def _parse_line(raw: Any, index: int, rules: FieldRules, notices: list[Notice]) -> LineRequest:
    step = f"line[{index}]"
    if not isinstance(raw, dict):
        raise AgentError("VALIDATION_ERROR", "each line must be an object", step=step)
    kind = raw.get("type", "inventory")
    if kind not in LINE_KINDS:
        raise AgentError(
            "VALIDATION_ERROR", f"type must be one of {', '.join(LINE_KINDS)}", step=step, field="type"
        )
    if kind == "comment":  # §2.3: "/C" is the comment line; text in CommentText
        text = rules.check("CommentText", _text(raw, "text", step), step, notices)
        if not text:
            raise AgentError("VALIDATION_ERROR", "comment lines need text", step=step, field="CommentText$")
        return LineRequest(kind=kind, item_code="/C", comment_text=text, description=text[:30])
    item_code = _text(raw, "item_code", step).upper()
    if not item_code:
        raise AgentError("VALIDATION_ERROR", "item_code is required", step=step, field="ItemCode$")
    # §2.3: "/" = miscellaneous item or charge, "*" = special item (NOT a comment). Enforce the prefix so a
    # wrong line type cannot silently become an inventory line.
    expected_prefix = {"misc": "/", "special": "*"}.get(kind)
    if expected_prefix and not item_code.startswith(expected_prefix):
        raise AgentError(
            "VALIDATION_ERROR",
            f"{kind} item codes start with {expected_prefix!r}",
            step=step,
            field="ItemCode$",
        )
    if kind == "inventory" and item_code[0] in "/*":
        raise AgentError(
            "VALIDATION_ERROR", "inventory item codes cannot start with / or *", step=step, field="ItemCode$"
        )
    job = None
    if raw.get("job"):
        job_raw = raw["job"] if isinstance(raw["job"], dict) else {}
        job = JobRef(
            job_no=rules.check("JobNo", _text(job_raw, "job_no", step).upper(), step, notices),
            cost_code=rules.check("CostCode", _text(job_raw, "cost_code", step).upper(), step, notices),
            cost_type=rules.check("CostType", _text(job_raw, "cost_type", step).upper(), step, notices),
        )
        if not job.job_no:
            raise AgentError("VALIDATION_ERROR", "job.job_no is required", step=step, field="JobNo$")
    gl_account = _text(raw, "gl_account", step)
    if gl_account:
        gl_account = check_gl_account(
            rules.check("Account", gl_account, step, notices), rules.gl_account_mask, step
        )
    return LineRequest(
        kind=kind,
        item_code=rules.check("ItemCode", item_code, step, notices),
        description=rules.check("ItemCodeDesc", _text(raw, "description", step), step, notices),
        quantity=_amount(raw, "quantity", "QuantityOrdered", step),
        unit_cost=_amount(raw, "unit_cost", "UnitCost", step),
        unit_of_measure=rules.check(
            "UnitOfMeasure", _text(raw, "unit_of_measure", step).upper(), step, notices
        ),
        warehouse_code=rules.check(
            "WarehouseCode", _text(raw, "warehouse_code", step).upper(), step, notices
        ),
        gl_account=gl_account,
        gl_account_key=rules.check(
            "PurchasesAcctKey", _text(raw, "gl_account_key", step).upper(), step, notices
        ),
        job=job,
        required_date=_date(raw, "required_date", step),
    )


def parse_create_request(body: Any, rules: FieldRules) -> tuple[PurchaseOrderRequest, list[Notice]]:
    """Validate and normalise a create-PO JSON body. Raises 400 ``VALIDATION_ERROR`` on the first problem."""
    if not isinstance(body, dict):
        raise AgentError("VALIDATION_ERROR", "body must be a JSON object")
    notices: list[Notice] = []
    step = "header"
    external_id = _text(body, "external_id", step)
    if not external_id:
        raise AgentError(
            "VALIDATION_ERROR", "external_id is required", step=step, field=rules.external_id_udf
        )
    external_id = rules.check(rules.external_id_udf, external_id, step, notices)
    vendor = body.get("vendor")
    if not isinstance(vendor, dict):
        raise AgentError(
            "VALIDATION_ERROR", "vendor {division, vendor_no} is required", step=step, field="VendorNo$"
        )
    udf: dict[str, str] = {}
    raw_udf = body.get("udf") or {}
    if not isinstance(raw_udf, dict):
        raise AgentError("VALIDATION_ERROR", "udf must be an object", step=step, field="udf")
    for name, value in raw_udf.items():
        if not _UDF_NAME.match(str(name)):
            raise AgentError("VALIDATION_ERROR", f"bad UDF {name!r}", step=step, field=str(name))
        if name in rules.numeric_udfs and name != rules.external_id_udf:
            udf[name] = _udf_number(name, value, step)
        elif isinstance(value, str):
            udf[name] = rules.check(name, value, step, notices)
        else:
            raise AgentError(
                "VALIDATION_ERROR",
                f"UDF {name} takes a string; list it in [rules] numeric_udfs if Sage defines it as numeric",
                step=step,
                field=str(name),
            )
    if udf.get(rules.external_id_udf, external_id) != external_id:
        raise AgentError(
            "VALIDATION_ERROR",
            f"udf.{rules.external_id_udf} differs from external_id",
            step=step,
            field=rules.external_id_udf,
        )
    udf[rules.external_id_udf] = external_id
    lines_raw = body.get("lines")
    if not isinstance(lines_raw, list) or not lines_raw or len(lines_raw) > _MAX_LINES:
        raise AgentError(
            "VALIDATION_ERROR", f"lines must be a list of 1 to {_MAX_LINES} lines", step=step, field="lines"
        )
    lines = tuple(_parse_line(raw, i + 1, rules, notices) for i, raw in enumerate(lines_raw))
    if all(line.kind == "comment" for line in lines):
        raise AgentError(
            "VALIDATION_ERROR", "a PO needs at least one non-comment line", step=step, field="lines"
        )
    request = PurchaseOrderRequest(
        external_id=external_id,
        division=normalize_division(vendor.get("division")),
        vendor_no=normalize_vendor_no(vendor.get("vendor_no")),
        po_date=_date(body, "po_date", step) or date.today(),
        required_date=_date(body, "required_date", step),
        ship_to_code=rules.check("ShipToCode", _text(body, "ship_to_code", step).upper(), step, notices),
        warehouse_code=rules.check(
            "WarehouseCode", _text(body, "warehouse_code", step).upper(), step, notices
        ),
        terms_code=rules.check("TermsCode", _text(body, "terms_code", step).upper(), step, notices),
        comment=rules.check("Comment", _text(body, "comment", step), step, notices),
        requisitioner=rules.check(REQUISITIONER_COLUMN, _text(body, "requisitioner", step), step, notices),
        confirm_to=rules.check(CONFIRM_TO_COLUMN, _text(body, "confirm_to", step), step, notices),
        udf=udf,
        numeric_udfs=frozenset(n for n in udf if n in rules.numeric_udfs and n != rules.external_id_udf),
        lines=lines,
    )
    return request, notices


def _udf_number(name: str, value: Any, step: str) -> str:
    """A numeric UDF's value: a JSON number or a decimal string, kept as canonical decimal text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AgentError("VALIDATION_ERROR", f"UDF {name} takes a number", step=step, field=name)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise AgentError("VALIDATION_ERROR", f"UDF {name} takes a number", step=step, field=name) from None
    if not number.is_finite():
        raise AgentError("VALIDATION_ERROR", f"UDF {name} takes a finite number", step=step, field=name)
    return str(number)
