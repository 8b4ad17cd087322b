"""Find the Asana task a document already has before creating one again (ARCHITECTURE §6, step 4).

Asana has no idempotency key (reference/asana.md §4.6). When a create's outcome is unknown (timeout,
5xx after sending, a worker killed between the create and storing the GID, a lease lost) the next
attempt looks for the task the lost attempt may have made — and a person may have renamed it, moved it
to another project or overwritten its reference field meanwhile, and the connector's clock may be
minutes off Asana's. So:

- **Under OAuth** the task carries `external.gid` = tenant + natural key (+ generation): invisible in
  Asana's UI, so nobody can edit it, and `GET /tasks/external:<gid>` finds it wherever it is (§4.5).
- **Under a PAT** nothing on Asana's side is private to the connector. Candidates are the tasks the
  connector's own user created since the attempt began — on ASANA's clock (§6a) — wherever they are now:
  the flow's project (`GET /tasks?project=&modified_since=`, read-your-write) and the workspace search
  by creator and creation time (§4.7, premium; its index lags 10–60 s, so "not found yet" is only
  "unknown" until the window has settled). Each candidate is matched by every marker the create wrote:
  the identity line in the notes (tenant, natural key, generation, link), the ERP reference field, the
  name. A candidate linked to another link, or whose identity line names another document, is never
  ours. One that may be ours but cannot be proven parks the link for a person ("outcome unknown"), with
  the candidates listed: never a second task, never a silent guess.

`decide` is pure (unit-tested); `find_task` does the reading.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from integrations.asana.shapes import parse_asana_time
from integrations.base import errors
from integrations.flows.documents.plan import FlowSettings

log = logging.getLogger(__name__)

RECONCILE_MARGIN = timedelta(minutes=2)  # Date headers have 1 s resolution; requests take time
SEARCH_SETTLE = timedelta(seconds=90)  # search indexes within 10–60 s (§4.7), "longer during incidents"
BASE_FIELDS = ("name", "created_at", "modified_at", "completed", "notes", "created_by")
CUSTOM_FIELDS = (
    "custom_fields.name",
    "custom_fields.type",
    "custom_fields.resource_subtype",
    "custom_fields.text_value",
    "custom_fields.number_value",
    "custom_fields.enum_value",
    "custom_fields.multi_enum_values",
    "custom_fields.date_value",
    "custom_fields.people_value",
    "custom_fields.display_value",
)
MARKER_PREFIX = "ml-connector ·"
_MARKER_LINE = re.compile(r"^ml-connector · .*$", re.MULTILINE)


def identity_marker(tenant_slug: str, key: str, generation: int, link_id: int) -> str:
    """The line the connector writes into a new task's notes: it proves whose task it is."""
    return f"{MARKER_PREFIX} {tenant_slug} · {key} · generation {generation} · link {link_id}"


def external_gid(settings: FlowSettings, key: str, generation: int) -> str:
    return settings.external_prefix + key + (f"#g{generation}" if generation > 1 else "")


@dataclass
class Identity:
    """What the lost attempt wrote, to recognise its task by."""

    key: str
    name: str
    marker: str
    generation: int
    link_id: int
    connector_user: str = ""


@dataclass
class Verdict:
    task: dict[str, Any] | None = None  # adopt this task
    duplicates: list[str] = field(default_factory=list)  # further tasks proven ours (to review)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)  # may be ours, unprovable: a person
    undecided: bool = False  # nothing found yet, but the search index may not show it yet
    retry_after: float = 0.0
    notes: list[str] = field(default_factory=list)


def _ref_value(task: Mapping[str, Any], field_gid: str) -> str | None:
    for entry in task.get("custom_fields") or []:
        if str(entry.get("gid")) == field_gid:
            return (entry.get("text_value") or entry.get("display_value") or "").strip()
    return None


def classify(task: Mapping[str, Any], settings: FlowSettings, who: Identity) -> tuple[str, str]:
    """("ours" | "foreign" | "maybe", why) for one candidate created by the connector's user in the window."""
    markers = _MARKER_LINE.findall(task.get("notes") or "")
    if who.marker in markers:
        return "ours", "identity line in the notes"
    if markers:
        return "foreign", f"its identity line names another document ({markers[0]})"
    if settings.erp_reference_field_gid:
        ref = _ref_value(task, settings.erp_reference_field_gid)
        if ref == who.key:
            return "ours", "ERP reference field"
    if (task.get("name") or "") == who.name:
        return "ours", "task name"
    return "maybe", "created by the connector's user during the attempt, but no marker matches any more"


def decide(
    candidates: Iterable[Mapping[str, Any]],
    settings: FlowSettings,
    who: Identity,
    *,
    window_start: datetime,
    linked_elsewhere: set[str],
    settled: bool,
    settle_in: float,
) -> Verdict:
    """The pure decision over every candidate seen (project listing + search, fresh reads)."""
    verdict = Verdict()
    ours: list[Mapping[str, Any]] = []
    for task in candidates:
        gid = str(task.get("gid"))
        created = parse_asana_time(task.get("created_at"))
        if gid in linked_elsewhere:
            continue
        if created is not None and created < window_start:
            continue
        creator = str((task.get("created_by") or {}).get("gid") or "")
        if who.connector_user and creator and creator != who.connector_user:
            continue
        kind, why = classify(task, settings, who)
        if kind == "ours":
            ours.append(task)
            verdict.notes.append(f"task {gid} is ours ({why})")
        elif kind == "maybe":
            verdict.ambiguous.append(
                {"gid": gid, "name": task.get("name"), "created_at": task.get("created_at")}
            )
    if ours:
        ours.sort(key=lambda t: (t.get("created_at") or "", int(t["gid"])))
        verdict.task = dict(ours[0])
        verdict.duplicates = [str(t["gid"]) for t in ours[1:]]
        verdict.ambiguous = []
        return verdict
    if verdict.ambiguous:
        return verdict
    if not settled:
        verdict.undecided = True
        verdict.retry_after = max(5.0, settle_in)
    return verdict


def find_task(
    asana: Any,
    settings: FlowSettings,
    who: Identity,
    *,
    attempt_started: datetime,
    lease: timedelta,
    linked_elsewhere: Any,
) -> Verdict:
    """Read every place the lost attempt's task can be and decide. `attempt_started` is on Asana's
    clock; `linked_elsewhere(gids)` returns the GIDs another link (of any tenant) already owns."""
    if settings.external_prefix:
        return _find_by_external(asana, settings, who, linked_elsewhere)
    window_start = attempt_started - RECONCILE_MARGIN
    fields = BASE_FIELDS + CUSTOM_FIELDS
    seen: dict[str, dict[str, Any]] = {}
    for task in asana.iter_project_tasks(settings.project_gid, modified_since=window_start, fields=fields):
        seen[str(task["gid"])] = task
    searched = True
    notes: list[str] = []
    try:
        found = asana.search_tasks(
            created_by=who.connector_user or None, created_after=window_start, fields=fields
        )
    except errors.ConnectorError as exc:
        if exc.status != 402 and not isinstance(exc, errors.Forbidden):
            raise
        searched, found = False, []
        notes.append(
            "workspace search unavailable (not a premium workspace): a task moved out of the project "
            "before this check cannot be seen"
        )
    for task in found:
        gid = str(task["gid"])
        if gid in seen:
            continue
        try:  # the index may be stale: read the task as it is now (gone = not a candidate)
            seen[gid] = asana.get_task(gid, fields=fields)
        except errors.NotFound:
            continue
    now = asana.asana_now()
    settled_at = attempt_started + lease + SEARCH_SETTLE
    verdict = decide(
        seen.values(),
        settings,
        who,
        window_start=window_start,
        linked_elsewhere=set(linked_elsewhere(list(seen))),
        settled=not searched or now >= settled_at,
        settle_in=(settled_at - now).total_seconds(),
    )
    verdict.notes = notes + verdict.notes
    return verdict


def _find_by_external(asana: Any, settings: FlowSettings, who: Identity, linked_elsewhere: Any) -> Verdict:
    gid = external_gid(settings, who.key, who.generation)
    task = asana.find_task_by_external(gid, fields=BASE_FIELDS + CUSTOM_FIELDS)
    if task is None:
        return Verdict(notes=[f"no task carries external id {gid}"])
    if str(task["gid"]) in set(linked_elsewhere([str(task["gid"])])):
        return Verdict(notes=[f"task {task['gid']} with external id {gid} belongs to another link"])
    return Verdict(task=task, notes=[f"task {task['gid']} is ours (external id {gid})"])


def match_method(settings: FlowSettings) -> str:
    if settings.external_prefix:
        return "external id"
    return "the connector's identity line, ERP reference and name, among the tasks its user created"
