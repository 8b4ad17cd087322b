"""Writes the audit trail: API calls, audit entries and the context that links them.

Flow steps set the context (`audit_context(run=…, record_link=…)`); every API call made inside it
is linked to that run and record, so a record's lineage page can show the calls made for it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from integrations.base.redaction import redact_data

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "audit_context", default=None
)


@contextmanager
def audit_context(**values: Any) -> Iterator[dict[str, Any]]:
    """Attach run / record_link / tenant_id to everything recorded inside the block."""
    merged = {**(_context.get() or {}), **values}
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return _context.get() or {}


_api_call_buffer: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "api_call_buffer", default=None
)


@contextmanager
def buffered_api_calls(*, enabled: bool = True) -> Iterator[None]:
    """Within: API-call rows are kept and written in one INSERT when the block ends, normally or by
    an error (not when the process itself is going away).
    For a poll page (issue 17: per page, not per row). A process killed inside loses those excerpts,
    never an effect: effects are AuditEntry rows, written as they happen."""
    if not enabled or _api_call_buffer.get() is not None:
        yield
        return
    token = _api_call_buffer.set([])
    try:
        yield
    except Exception:
        _flush_api_calls(token)
        raise
    except BaseException:  # the process is going away (killed, interrupted): it sends no more SQL
        _api_call_buffer.reset(token)
        raise
    _flush_api_calls(token)


def _flush_api_calls(token: contextvars.Token) -> None:
    rows = _api_call_buffer.get() or []
    _api_call_buffer.reset(token)
    if rows:
        from .models import ApiCall

        ApiCall.objects.bulk_create(rows)


def record_api_call(record) -> None:
    from .models import ApiCall

    ctx = current_context()
    run = ctx.get("run")
    link = ctx.get("record_link")
    buffer = _api_call_buffer.get()
    row = ApiCall(
        tenant_id=record.tenant_id or ctx.get("tenant_id"),
        run_id=getattr(run, "pk", run),
        record_link_id=getattr(link, "pk", link),
        system=record.system,
        method=record.method,
        url=record.url,
        status_code=record.status_code,
        duration_ms=record.duration_ms,
        attempt=record.attempt,
        error=record.error,
        request_excerpt=record.request_excerpt,
        response_excerpt=record.response_excerpt,
        started_at=record.started_at,
    )
    if buffer is not None:
        buffer.append(row)
    else:
        row.save(force_insert=True)


def _entry_fields(tenant, operation: str, status: str, fields: dict[str, Any]) -> dict[str, Any]:
    """An AuditEntry's columns: snapshots and payloads redacted, run, link, actor and replay from the
    audit context unless given."""
    ctx = current_context()
    for name in ("source_snapshot", "payload", "field_diff"):
        if name in fields and fields[name] is not None:
            fields[name] = redact_data(fields[name])
    fields.setdefault("run", ctx.get("run"))
    fields.setdefault("record_link", ctx.get("record_link"))
    fields.setdefault("actor", ctx.get("actor", "system"))
    fields.setdefault(
        "replay_of", ctx.get("replay_of")
    )  # set by integrations.flows.replay around a replayed run
    return {"tenant": tenant, "operation": operation, "status": status, **fields}


def record_entry(*, tenant, operation: str, status: str, **fields: Any):
    """Append one AuditEntry; snapshots and payloads are redacted before they are stored."""
    from .models import AuditEntry

    return AuditEntry.objects.create(**_entry_fields(tenant, operation, status, fields))


_entry_insert: Any = None


def append_entry(*, tenant, operation: str, status: str, **fields: Any) -> int:
    """record_entry's row, by one INSERT whose SQL is written once per database (audit/rows.py) instead
    of a model's save: for a flow's per-record entries, written and never read back. The new row's id."""
    global _entry_insert
    if _entry_insert is None:
        from .models import AuditEntry
        from .rows import RowInsert

        _entry_insert = RowInsert(AuditEntry)
    return _entry_insert(_entry_fields(tenant, operation, status, fields))
