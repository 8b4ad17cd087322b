"""Reading push-notification rows as Acumatica writes them (reference/acumatica.md §7.3, §7.5).

A push row is a flat generic-inquiry row keyed by column name. What a GI calls a column depends on how
it was built, so one document's key arrives in several spellings:

- the DAC field (`DocType`/`RefNbr`, `OrderType`/`OrderNbr`, §7.5) or the contract field
  (`Type`/`ReferenceNbr`, `Type`/`OrderNbr`, §3.1, §3.2);
- prefixed with the table, as GIs name columns of joined tables (`APInvoice_RefNbr`,
  `POOrder_OrderNbr`; §7.3's own example has `InventoryItem_lastModifiedDateTime`);
- the document type as its display value (`Bill`, `Normal`) or its internal code (`INV`, `RO`): GIs
  show codes for a DAC field without its list attribute. The REST API keys documents by display value
  (§3.1, §8.7), so a code is translated before the re-read.

The vocabulary is a set of class-level tables. An unknown *type value* passes through unchanged (the
worker re-reads by key and finds out); a row none of whose spellings names a document is reported as
unreadable with the columns it had, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

BILLS = "acumatica_bills"
ORDERS = "acumatica_purchase_orders"


@dataclass(frozen=True)
class RowReading:
    keys: dict[str, list[tuple[str, str]]]  # flow kind -> (type display value, number), in row order
    unreadable: list[list[str]]  # the columns of each row that names no document

    def for_kind(self, kind: str) -> list[tuple[str, str]]:
        return self.keys.get(kind, [])

    @property
    def readable_count(self) -> int:
        return sum(len(v) for v in self.keys.values())


class PushVocabulary:
    """Acumatica's spellings of a document key in a GI row, by flow kind."""

    # Internal codes -> display values. AP: APDocType (INV Bill, ACR Credit Adj., ADR Debit Adj.,
    # PPM Prepayment; displays from §3.1). PO: POOrderType (RO Normal, DP Drop-Ship, PD Project
    # Drop-Ship, BL Blanket, SB Standard, RS Subcontract; displays from §3.2). Source: PX.Objects
    # APDocType / POOrderType list attributes.
    TYPE_CODES: dict[str, dict[str, str]] = {
        BILLS: {"INV": "Bill", "ACR": "Credit Adj.", "ADR": "Debit Adj.", "PPM": "Prepayment"},
        ORDERS: {
            "RO": "Normal",
            "DP": "Drop-Ship",
            "PD": "Project Drop-Ship",
            "BL": "Blanket",
            "SB": "Standard",
            "RS": "Subcontract",
        },
    }
    # Column names, without a table prefix, compared case-insensitively.
    TYPE_COLUMNS: dict[str, tuple[str, ...]] = {
        BILLS: ("DocType", "Type"),
        ORDERS: ("OrderType", "Type"),
    }
    NUMBER_COLUMNS: dict[str, tuple[str, ...]] = {
        BILLS: ("RefNbr", "ReferenceNbr"),
        ORDERS: ("OrderNbr",),
    }
    # Tables whose name may prefix a column (`<Table>_<Column>`).
    TABLES: dict[str, tuple[str, ...]] = {
        BILLS: ("APInvoice", "APRegister", "Bill"),
        ORDERS: ("POOrder", "PurchaseOrder"),
    }

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        return tuple(cls.NUMBER_COLUMNS)

    @classmethod
    def display_type(cls, kind: str, value: str) -> str:
        """A type code as its display value; a display value or an unknown code unchanged."""
        return cls.TYPE_CODES.get(kind, {}).get(value.upper(), value)

    @classmethod
    def _columns(cls, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        """The row's non-empty values by bare lower-case column name (this kind's table prefixes cut)."""
        prefixes = tuple(f"{t.lower()}_" for t in cls.TABLES.get(kind, ()))
        bare: dict[str, Any] = {}
        for name, value in row.items():
            if value in (None, "") or not isinstance(name, str):
                continue
            low = name.lower()
            for prefix in prefixes:
                if low.startswith(prefix):
                    low = low[len(prefix) :]
                    break
            bare.setdefault(low, value)
        return bare

    @classmethod
    def key_of(cls, kind: str, row: dict[str, Any]) -> tuple[str, str] | None:
        columns = cls._columns(kind, row)
        doc_type = next((columns[c.lower()] for c in cls.TYPE_COLUMNS[kind] if c.lower() in columns), None)
        number = next((columns[c.lower()] for c in cls.NUMBER_COLUMNS[kind] if c.lower() in columns), None)
        if doc_type is None or number is None:
            return None
        if not isinstance(doc_type, str | int) or not isinstance(number, str | int):
            return None
        doc_type, number = str(doc_type).strip(), str(number).strip()
        if not doc_type or not number:
            return None
        return cls.display_type(kind, doc_type), number

    @classmethod
    def expected(cls) -> str:
        """What a readable row carries, for the operator reading an `unreadable` event."""
        parts = []
        for kind in cls.kinds():
            tables = ", ".join(f"{t}_" for t in cls.TABLES[kind])
            parts.append(
                f"{kind}: one of {'/'.join(cls.TYPE_COLUMNS[kind])} and one of "
                f"{'/'.join(cls.NUMBER_COLUMNS[kind])} (optionally prefixed {tables})"
            )
        return "; ".join(parts)


def _rows(payload: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for name in ("Inserted", "Deleted"):
        rows = payload.get(name)
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict):
                yield row


def read_rows(payload: dict[str, Any], vocabulary: type[PushVocabulary] = PushVocabulary) -> RowReading:
    """Every document key in `Inserted` and `Deleted` (an update is the same key in both, §7.3)."""
    keys: dict[str, dict[tuple[str, str], None]] = {}
    unreadable: list[list[str]] = []
    for row in _rows(payload):
        found = False
        for kind in vocabulary.kinds():
            key = vocabulary.key_of(kind, row)
            if key is not None:
                keys.setdefault(kind, {})[key] = None
                found = True
        if not found:
            unreadable.append(sorted(str(c) for c in row)[:40])
    return RowReading({k: list(v) for k, v in keys.items()}, unreadable)


def unreadable_reason(reading: RowReading, vocabulary: type[PushVocabulary] = PushVocabulary) -> str:
    shown = "; ".join(", ".join(cols) or "(no columns)" for cols in reading.unreadable[:5])
    more = f" (+{len(reading.unreadable) - 5} more rows)" if len(reading.unreadable) > 5 else ""
    return (
        f"{len(reading.unreadable)} row(s) name no document. Columns: {shown}{more}. "
        f"Expected {vocabulary.expected()}."
    )[:2000]
