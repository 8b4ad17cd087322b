"""What an approval binds to (ARCHITECTURE §6a): the guarded values the connector wrote, on Asana's clock.

An approval of a document's task counts only if
    1. the link is live (its document was not deleted, voided or cancelled, and this is its generation),
    2. Asana's time of the approval is later than Asana's time of the connector's last write that
       CHANGED a guarded value (amount, vendor, reference, due date… — whatever the flow guards),
    3. the task still shows those last-written values (nobody typed other figures into the task), and
    4. the document in the ERP still holds them (and is still the same document: same record id).
Anything else is not an approval of this document: the release is refused, the reason recorded, and a
new approval asked for.

The history of guarded writes is kept per link (`GuardedWrite`, append-only) with Asana's time of each
write, taken from the write's own answer (`modified_at`) — never from this host's clock.

Pure helpers (`normalise`, `guarded_values`, `binding_problems`) are unit-tested without I/O;
`record_guarded_write` and `approval_moment` touch the database and Asana.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from audit.rows import RowInsert
from integrations.asana.shapes import approval_outcome, parse_asana_time
from integrations.base import errors
from integrations.models import Flow, GuardedWrite, RecordLink

# The values that identify "the document that was approved", per document kind; a flow may add more
# with options["guarded_fields"]. Only the ones mapped onto the task take part (the approver saw them).
GUARDED_FIELDS: dict[str, tuple[str, ...]] = {
    RecordLink.Kind.BILL: ("Amount", "Vendor", "ReferenceNbr", "VendorRef", "DueDate"),
    RecordLink.Kind.PURCHASE_ORDER: ("OrderTotal", "VendorID", "OrderNbr", "VendorRef", "PromisedOn"),
}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ].*)?$")


def guarded_paths(kind: str, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    extra = tuple(str(p) for p in (options or {}).get("guarded_fields") or ())
    return tuple(dict.fromkeys((*GUARDED_FIELDS.get(kind, ()), *extra)))


def normalise(value: Any, precision: int | None = None) -> str | None:
    """One comparable text per value, whichever side it was read from (ERP record or Asana task)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, datetime):
        return value.date().isoformat()
    if hasattr(value, "isoformat") and not isinstance(value, (int, float, Decimal, str)):
        return value.isoformat()[:10]  # a date
    if isinstance(value, (int, float, Decimal)):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return str(value)
        if precision is not None:
            return str(number.quantize(Decimal(1).scaleb(-precision)))
        return str(number.normalize())
    text = str(value).strip()
    if _DATE.match(text):
        return text[:10]
    if precision is not None:  # a number that arrived as text ("1000.0") reads like the number
        try:
            return str(Decimal(text).quantize(Decimal(1).scaleb(-precision)))
        except (InvalidOperation, ValueError):
            return text
    return text


def guarded_values(
    record: Mapping[str, Any], mapped: Iterable[tuple[str, int | None]], paths: Iterable[str]
) -> dict[str, str | None]:
    """{path: normalised value} of the guarded paths that are mapped onto the task. `mapped` is
    (source path, precision) of every ERP → Asana mapping of the document's flow."""
    wanted = set(paths)
    return {path: normalise(record.get(path), precision) for path, precision in mapped if path in wanted}


def mapped_guards(mappings: Iterable[Any], erp_reference_field_gid: str = "") -> list[tuple[str, int | None]]:
    """(source path, precision) of the ERP → Asana mappings an approver sees as figures. The ERP
    reference field is left out: it holds the connector's natural key ("Bill/000123"), the key the
    link and the document re-read are found by — it cannot differ from the document."""
    out = []
    for m in mappings:
        gid = getattr(m, "asana_field_gid", None) or getattr(m, "field_gid", "")
        if erp_reference_field_gid and gid == erp_reference_field_gid:
            continue
        out.append((m.source_path, m.precision))
    return out


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """["Amount 1000.00 → 19000.00", …] for every guarded value that differs."""
    out = []
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            out.append(f"{path} {old.get(path) or '(empty)'} → {new.get(path) or '(empty)'}")
    return out


def record_guarded_write(
    link_id: int,
    values: Mapping[str, Any],
    asana_time: datetime | None,
    *,
    operation: str,
    approval_reset: bool = False,
) -> tuple[bool, dict[str, Any]]:
    """Remember what the connector just wrote to the task. Returns (a guarded value changed?, previous).

    Only a write that changes a guarded value moves `guarded_written_at` (approvals given before it
    no longer count); writes of other fields leave approvals standing."""
    if asana_time is None:
        raise ValueError("a guarded write needs Asana's time of the write")
    with transaction.atomic():
        link = RecordLink.objects.select_for_update().get(pk=link_id)
        previous = dict(link.guarded_values or {})
        changed = previous != dict(values) or link.guarded_written_at is None
        if not changed:
            return False, previous
        link.guarded_values = dict(values)
        link.guarded_written_at = asana_time
        link.save(update_fields=["guarded_values", "guarded_written_at", "updated_at"])
        GuardedWrite.objects.create(
            link=link,
            generation=link.generation,
            operation=operation,
            values=dict(values),
            previous=previous,
            asana_time=asana_time,
            approval_reset=approval_reset,
        )
    return True, previous


def record_first_write(
    link: RecordLink, values: Mapping[str, Any], asana_time: datetime, *, operation: str
) -> None:
    """The history row of a link's first guarded write, whose values the caller stored on the link
    under its own fence in this transaction (documents/batch.py): no read, one INSERT (audit/rows.py)."""
    _guarded_write_insert(
        dict(
            link=link,
            generation=link.generation,
            operation=operation,
            values=dict(values),
            previous={},
            asana_time=asana_time,
            approval_reset=False,
        )
    )


_guarded_write_insert = RowInsert(GuardedWrite)


@dataclass(frozen=True)
class ApprovalMoment:
    """When (on Asana's clock) and by whom the task's current approval was given."""

    at: datetime | None
    by: str = ""
    source: str = ""  # "story", "completed_at"


def _is_approving_story(flow: Flow, story: Mapping[str, Any]) -> bool:
    subtype = story.get("resource_subtype") or ""
    rule = flow.approval_rule
    if rule == Flow.ApprovalRule.ENUM_OPTION:
        field = story.get("custom_field") or {}
        option = story.get("new_enum_value") or {}
        return (
            str(field.get("gid") or "") == flow.approval_field_gid
            and str(option.get("gid") or "") == flow.approval_option_gid
        )
    if subtype in ("approved", "marked_approved"):
        return True
    if (story.get("new_approval_status") or "") == "approved":
        return True
    return rule == Flow.ApprovalRule.COMPLETED and subtype == "marked_complete"


def approval_moment(
    asana: Any, flow: Flow, task: Mapping[str, Any], inbound_event: Any = None
) -> ApprovalMoment:
    """Asana's time of the task's current approval, from the best source it offers:
    1. the latest story that put the task into its approved state (who and when);
    2. the delivered webhook event that changed the approval (its `created_at`; never an event the
       connector's own catch-up poll made up, whose time is a `modified_at`, later than the approval);
    3. for completion and approval tasks, the task's `completed_at`.
    Each is Asana's own time; none can make an approval look later than it was."""
    latest: Mapping[str, Any] | None = None
    try:
        for story in asana.iter_stories(task["gid"]):
            if _is_approving_story(flow, story):
                latest = story  # stories come oldest first
    except errors.PermanentError:
        latest = None  # an Asana without readable stories for this task: the other sources decide
    if latest is not None:
        return ApprovalMoment(
            parse_asana_time(latest.get("created_at")),
            str((latest.get("created_by") or {}).get("gid") or ""),
            "story",
        )
    delivered = _approval_event_time(flow, task, inbound_event)
    if delivered is not None:
        return delivered
    if flow.approval_rule != Flow.ApprovalRule.ENUM_OPTION and (
        task.get("completed") or approval_outcome(task) == "approved"
    ):
        return ApprovalMoment(parse_asana_time(task.get("completed_at")), "", "completed_at")
    return ApprovalMoment(None)


def _approval_event_time(flow: Flow, task: Mapping[str, Any], inbound_event: Any) -> ApprovalMoment | None:
    if inbound_event is None:
        return None
    try:
        body = json.loads(bytes(inbound_event.raw_body or b"{}"))
    except (TypeError, ValueError):
        return None
    events = body.get("events") if isinstance(body, dict) and "events" in body else [body]
    best: ApprovalMoment | None = None
    for event in events or []:
        if not isinstance(event, dict) or event.get("source") == "poll":
            continue
        resource = event.get("resource") or {}
        change = event.get("change") or {}
        if str(resource.get("gid")) != str(task.get("gid")) or event.get("action") != "changed":
            continue
        field = change.get("field")
        if flow.approval_rule == Flow.ApprovalRule.ENUM_OPTION:
            hit = field == "custom_fields" and str((change.get("new_value") or {}).get("gid")) == str(
                flow.approval_field_gid
            )
        else:
            hit = field in ("completed", "approval_status")
        when = parse_asana_time(event.get("created_at")) if hit else None
        if when is not None and (best is None or when > best.at):
            best = ApprovalMoment(when, str((event.get("user") or {}).get("gid") or ""), "event")
    return best


def binding_problems(
    link: RecordLink,
    approval: ApprovalMoment,
    shown: Mapping[str, Any],
    document: Mapping[str, Any] | None,
    document_values: Mapping[str, Any],
) -> list[str]:
    """Why this approval does not bind to the document as it is now (empty: it does). Pure."""
    problems: list[str] = []
    if not link.is_live:
        return [
            f"the document of this task was {link.get_state_display().lower()}: the approval acts on nothing"
        ]
    if link.state != RecordLink.State.LINKED:
        problems.append(f"the task is not in sync with the document ({link.get_state_display()})")
    if not link.guarded_values or link.guarded_written_at is None:
        return [*problems, "no record of the values the connector wrote to this task yet"]
    if approval.at is None:
        problems.append("Asana does not say when the task was approved")
    elif approval.at <= link.guarded_written_at:
        problems.append(
            f"approved at {approval.at:%Y-%m-%d %H:%M:%S} UTC, before the connector wrote the current "
            f"values at {link.guarded_written_at:%Y-%m-%d %H:%M:%S} UTC (Asana's clock)"
        )
    on_task = describe_changes(link.guarded_values, {p: shown.get(p) for p in link.guarded_values})
    if on_task:
        problems.append("the task shows other figures than the connector wrote: " + "; ".join(on_task))
    if document is None:
        problems.append("the document no longer exists in the ERP")
        return problems
    record_id = str(getattr(document, "id", None) or document.get("id") or "")
    if link.acumatica_id and record_id and record_id != link.acumatica_id:
        problems.append(
            f"the number now belongs to another document (record {record_id}, the task's was "
            f"{link.acumatica_id}): it was deleted and entered again"
        )
    in_erp = describe_changes(link.guarded_values, {p: document_values.get(p) for p in link.guarded_values})
    if in_erp:
        problems.append(
            "changed after approval in the ERP (the task shows the old values): " + "; ".join(in_erp)
        )
    return problems


def approval_reset_changes(flow: Flow, task: Mapping[str, Any]) -> dict[str, Any]:
    """The PUT /tasks fields that put an approved task back to "needs approval" under the flow's rule."""
    if flow.approval_rule == Flow.ApprovalRule.ENUM_OPTION:
        reset = (flow.options or {}).get("reopen_option_gid")  # None clears the field
        return {"custom_fields": {flow.approval_field_gid: reset}}
    if approval_outcome(task) is not None:
        return {"approval_status": "pending"}
    return {"completed": False}


def merge_changes(changes: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(changes)
    for key, value in extra.items():
        if key == "custom_fields":
            out["custom_fields"] = {**(out.get("custom_fields") or {}), **value}
        else:
            out[key] = value
    return out
