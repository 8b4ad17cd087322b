"""One record's lineage: the Acumatica document ↔ Asana task ↔ Sage PO, and a single timeline of what
happened to it — inbound events, audit entries, API calls (already redacted when stored) and operator
actions (Django's admin LogEntry for the link).

Inbound events are matched two ways: those an audit entry names (`AuditEntry.inbound_event`), and the
Asana webhook events whose dedupe key carries the task GID (webhooks.event_dedupe_key puts the
resource GID second). A fixed number of queries per page whatever the history's length; the timeline
is capped (newest kept) so a record with years of history still renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q
from django.urls import reverse

from audit.models import ApiCall, AuditEntry, InboundEvent
from integrations.models import RecordLink

LIMIT = 300
ASANA_TASK_URL = "https://app.asana.com/0/{project}/{task}"


@dataclass
class TimelineItem:
    at: datetime
    kind: str  # event | audit | api | operator
    title: str
    status: str = ""
    detail: str = ""
    url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bad(self) -> bool:
        return self.status in ("failed", "rejected", "quarantined", "retrying") or self.status.startswith(
            ("4", "5")
        )


def asana_permalink(link: RecordLink) -> str:
    """Asana's task URL form `https://app.asana.com/0/<project>/<task>` (project 0 when unknown)."""
    if not link.asana_task_gid:
        return ""
    project = (link.flow.asana_project_gid if link.flow_id and link.flow else "") or "0"
    return ASANA_TASK_URL.format(project=project, task=link.asana_task_gid)


def systems(link: RecordLink) -> list[dict[str, str]]:
    """The three sides of the link, for the header of the page."""
    acumatica = " ".join(p for p in (link.acumatica_type, link.acumatica_ref) if p)
    return [
        {
            "system": "Acumatica",
            "what": link.get_kind_display(),
            "id": acumatica or "—",
            "extra": link.acumatica_id,
            "url": "",
        },
        {
            "system": "Asana",
            "what": "task",
            "id": link.asana_task_gid or "—",
            "extra": "",
            "url": asana_permalink(link),
        },
        {
            "system": "Sage 100",
            "what": "purchase order",
            "id": link.sage_po_number or "—",
            "extra": "",
            "url": "",
        },
    ]


def _admin_url(obj: Any) -> str:
    meta = obj._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])


def timeline(link: RecordLink, *, limit: int = LIMIT) -> list[TimelineItem]:
    """Newest first. Five queries: entries, calls, events, log entries (+ the content type, cached)."""
    items: list[TimelineItem] = []
    entries = list(AuditEntry.objects.filter(record_link=link).order_by("-created_at", "-id")[:limit])
    for e in entries:
        who = "" if e.actor == "system" else f" by {e.actor}"
        replay = f" (replay of #{e.replay_of_id})" if e.replay_of_id else ""
        items.append(
            TimelineItem(
                e.created_at,
                "audit",
                f"{e.operation}{who}{replay}",
                e.status,
                e.error,
                _admin_url(e),
                {"id": e.pk, "diff": e.field_diff, "run": e.run_id},
            )
        )
    for c in ApiCall.objects.filter(record_link=link).order_by("-started_at", "-id")[:limit]:
        items.append(
            TimelineItem(
                c.started_at,
                "api",
                f"{c.system} {c.method} {c.url}",
                str(c.status_code or "error"),
                c.error,
                _admin_url(c),
                {"ms": c.duration_ms},
            )
        )
    event_filter = Q(pk__in=[e.inbound_event_id for e in entries if e.inbound_event_id])
    if link.asana_task_gid:
        event_filter |= Q(
            source=InboundEvent.Source.ASANA_WEBHOOK,
            dedupe_key__startswith=f"asana:{link.tenant_id}:{link.asana_task_gid}:",
        )
    for ev in InboundEvent.objects.filter(event_filter).order_by("-received_at")[:limit]:
        items.append(
            TimelineItem(
                ev.received_at,
                "event",
                f"{ev.get_source_display()} #{ev.pk}",
                ev.status,
                ev.status_reason,
                _admin_url(ev),
            )
        )
    ct = ContentType.objects.get_for_model(RecordLink)
    for log in LogEntry.objects.filter(content_type=ct, object_id=str(link.pk)).select_related("user")[
        :limit
    ]:
        items.append(
            TimelineItem(
                log.action_time,
                "operator",
                f"{log.user.get_username()}: {log.get_change_message()}",
                "",
                "",
                "",
            )
        )
    items.sort(key=lambda i: i.at, reverse=True)
    return items[:limit]


def log_operator_action(request: Any, link: RecordLink, message: str) -> None:
    """Put an operator's console action (replay, retry…) on the record's timeline."""
    from django.contrib.admin.models import CHANGE

    LogEntry.objects.log_actions(
        user_id=request.user.pk,
        queryset=[link],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )
