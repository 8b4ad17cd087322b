"""Asana webhook registration, the watchdog and the gap backfill.

Registration (`ensure_webhooks`, `register`) runs from a task or `connector webhooks ensure`, never in a
web request: the handshake reaches `webhooks.receive` while `POST /webhooks` is open (§6.2). The
handshake's secret is kept only if the 201 body confirms it; a mismatch is refused, logged and the
webhook deleted. The watchdog runs hourly and from `connector webhooks check`.

Asana delivers at most once and deletes a webhook silently after 24 h of failed deliveries or
unanswered heartbeats (reference/asana.md §6.5, §8). So, per tenant:
- list our webhooks with their failure fields (`GET /webhooks?workspace=`); a listing that fails
  changes nothing (a partial view must not trigger re-registrations);
- a registration Asana no longer lists (deleted, or never confirmed) is registered again; a 403
  "Duplicated webhook" adopts the existing one (webhooks.register);
- `failure_deletion_timestamp` set, or no heartbeat for more than 8 h plus a margin, shows the row as
  `failing` in the console;
- after any gap, the task changes made during it are read back through
  `GET /tasks?project=&modified_since=` and processed like events, deduplicated by (task, modified_at).
The same backfill is the catch-up poll for approvals (inbound/tasks.poll_approvals).
"""

from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.recorder import record_entry
from integrations.asana.client import AsanaClient
from integrations.asana.shapes import DuplicateWebhook
from integrations.base import errors
from integrations.flows.common import task_events
from integrations.flows.common.task_events import store_task_change, webhook_projects
from integrations.models import AsanaWebhook, Cursor, Flow, Tenant

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = timedelta(hours=8)
HEARTBEAT_MARGIN = timedelta(hours=1)
GAP_OVERLAP = timedelta(minutes=5)
FIRST_POLL_LOOKBACK = timedelta(hours=24)
POLL_FIELDS = ("modified_at", "completed", "resource_subtype")


# ---- registration ----------------------------------------------------------------------------------


def target_url(hook: AsanaWebhook) -> str:
    return settings.PUBLIC_BASE_URL + reverse("asana-hook", kwargs={"target_uuid": hook.target_uuid})


def default_filters() -> list[dict[str, Any]]:
    """Only the task changes the flows need (§6.1). `approval_status` as a filter field is UNVERIFIED:
    registration retries without it if Asana refuses it (an approval decision also flips `completed`,
    except changes_requested → approved, which the catch-up poll covers)."""
    return [
        {"resource_type": "task", "action": "changed", "fields": ["completed", "custom_fields"]},
        {
            "resource_type": "task",
            "resource_subtype": "approval",
            "action": "changed",
            "fields": ["approval_status"],
        },
    ]


CONSERVATIVE_FILTERS = [
    {"resource_type": "task", "action": "changed", "fields": ["completed", "custom_fields"]}
]


@dataclass
class RegistrationResult:
    hook: AsanaWebhook
    action: str  # registered | adopted | exists | refused | failed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("registered", "adopted", "exists")


def registration_rows(tenant: Tenant) -> list[AsanaWebhook]:
    """The latest registration row of every project a flow consumes (created, unregistered, if missing)."""
    rows = []
    for project, flow in webhook_projects(tenant).items():
        hook = AsanaWebhook.objects.filter(tenant=tenant, resource_gid=project).order_by("-pk").first()
        if hook is None:
            hook = AsanaWebhook.objects.create(
                tenant=tenant,
                flow=flow,
                resource_gid=project,
                filters=flow.options.get("webhook_filters") or default_filters(),
            )
        rows.append(hook)
    return rows


def ensure_webhooks(tenant: Tenant, client: AsanaClient) -> list[RegistrationResult]:
    """Register a webhook for every project a flow consumes; leave healthy registrations alone."""
    results = []
    for hook in registration_rows(tenant):
        healthy = (AsanaWebhook.State.ACTIVE, AsanaWebhook.State.FAILING)
        if hook.webhook_gid and hook.secret and hook.state in healthy:
            results.append(RegistrationResult(hook, "exists", hook.webhook_gid))
        else:
            results.append(register(hook, client))
    return results


def register(hook: AsanaWebhook, client: AsanaClient, *, new_target: bool = False) -> RegistrationResult:
    """POST /webhooks for one registration; the handshake hits `receive` while this call is open."""
    changes: dict[str, Any] = {
        "state": AsanaWebhook.State.PENDING,
        "pending_since": timezone.now(),
        "secret": "",
        "webhook_gid": "",
    }
    if new_target:
        changes["target_uuid"] = uuid.uuid4()
    previous_secret = hook.secret  # kept for adoption: a lost 201 leaves the handshake's secret here
    AsanaWebhook.objects.filter(pk=hook.pk).update(**changes)
    hook.refresh_from_db()
    filters = hook.filters or default_filters()
    try:
        try:
            created = client.create_webhook(hook.resource_gid, target_url(hook), filters)
        except errors.Invalid as exc:
            if filters == CONSERVATIVE_FILTERS or "filter" not in (exc.message or "").lower():
                raise
            log.warning("asana refused the webhook filters (%s); retrying with %s", exc, CONSERVATIVE_FILTERS)
            # A new create call means a new handshake: reopen the window.
            AsanaWebhook.objects.filter(pk=hook.pk).update(
                filters=CONSERVATIVE_FILTERS, secret="", pending_since=timezone.now()
            )
            created = client.create_webhook(hook.resource_gid, target_url(hook), CONSERVATIVE_FILTERS)
    except DuplicateWebhook:
        hook.refresh_from_db()
        if not hook.secret and previous_secret:
            AsanaWebhook.objects.filter(pk=hook.pk).update(secret=previous_secret)
        return _adopt(hook, client)
    except errors.ConnectorError as exc:
        if not exc.outcome_unknown:
            # Asana created nothing, so a secret a handshake left here authenticates nothing (and may
            # be a forger's who beat Asana's own handshake); an unknown outcome keeps it for adoption.
            AsanaWebhook.objects.filter(pk=hook.pk).update(secret="")
        _close(hook, AsanaWebhook.State.GONE, f"registration failed: {exc}")
        record_entry(
            tenant=hook.tenant,
            operation="webhook.register",
            status="failed",
            record_key=hook.resource_gid,
            error=str(exc),
            error_class=type(exc).__name__,
        )
        return RegistrationResult(hook, "failed", str(exc))
    hook.refresh_from_db()
    handshake_secret = hook.secret
    body_secret = created.secret
    if body_secret and handshake_secret and not hmac.compare_digest(body_secret, handshake_secret):
        # Someone else answered a handshake on our URL (§6.2 first-writer takeover): refuse.
        log.error("asana webhook %s: handshake secret differs from the 201 body; deleting it", hook.pk)
        try:
            client.delete_webhook(str(created.webhook["gid"]))
        except errors.ConnectorError as exc:
            log.error("asana webhook %s: could not delete the refused webhook: %s", hook.pk, exc)
        _close(hook, AsanaWebhook.State.GONE, "refused: the handshake secret differs from the 201 body")
        # The URL may be known, and the stored secret may be a forger's: neither is used again.
        AsanaWebhook.objects.filter(pk=hook.pk).update(target_uuid=uuid.uuid4(), secret="")
        record_entry(
            tenant=hook.tenant,
            operation="webhook.register",
            status="failed",
            record_key=hook.resource_gid,
            error="handshake secret mismatch",
        )
        return RegistrationResult(hook, "refused", "handshake secret differs from the 201 body")
    secret = body_secret or handshake_secret
    if not secret:
        _close(hook, AsanaWebhook.State.GONE, "registration returned no secret")
        return RegistrationResult(hook, "failed", "no secret in the handshake or the 201 body")
    AsanaWebhook.objects.filter(pk=hook.pk).update(
        webhook_gid=str(created.webhook["gid"]),
        secret=secret,
        state=AsanaWebhook.State.ACTIVE,
        pending_since=None,
        last_checked_at=timezone.now(),
        last_failure_content="",
        failure_deletion_timestamp=None,
    )
    hook.refresh_from_db()
    record_entry(
        tenant=hook.tenant,
        operation="webhook.register",
        status="succeeded",
        record_key=hook.resource_gid,
        payload={"webhook_gid": hook.webhook_gid, "filters": filters},
    )
    return RegistrationResult(hook, "registered", hook.webhook_gid)


def _adopt(hook: AsanaWebhook, client: AsanaClient) -> RegistrationResult:
    """403 "Duplicated webhook": one exists for this resource + target → adopt it (§6.1, §10)."""
    hook.refresh_from_db()
    url = target_url(hook)
    existing = next(
        (w for w in client.list_webhooks(resource_gid=hook.resource_gid) if w.get("target") == url), None
    )
    if existing is None:
        _close(hook, AsanaWebhook.State.GONE, "Asana reports a duplicate but lists none")
        return RegistrationResult(hook, "failed", "duplicate reported but not listed")
    if not hook.secret:
        # We never learned its secret (the create's answer was lost): replace it on a fresh URL.
        client.delete_webhook(str(existing["gid"]))
        return register(hook, client, new_target=True)
    AsanaWebhook.objects.filter(pk=hook.pk).update(
        webhook_gid=str(existing["gid"]),
        state=AsanaWebhook.State.ACTIVE,
        pending_since=None,
        last_checked_at=timezone.now(),
    )
    hook.refresh_from_db()
    return RegistrationResult(hook, "adopted", hook.webhook_gid)


def _close(hook: AsanaWebhook, state: str, reason: str) -> None:
    AsanaWebhook.objects.filter(pk=hook.pk).update(
        state=state, pending_since=None, last_failure_at=timezone.now(), last_failure_content=reason[:2000]
    )
    hook.refresh_from_db()


@dataclass
class WatchReport:
    lines: list[str] = field(default_factory=list)
    reregistered: int = 0
    failing: int = 0
    backfilled: int = 0
    ok: bool = True

    def summary(self) -> str:
        head = f"{self.reregistered} re-registered, {self.failing} failing, {self.backfilled} backfilled" + (
            "" if self.ok else " (errors)"
        )
        return "; ".join([head, *self.lines])


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else None


def heartbeat_stale(hook: AsanaWebhook, now: datetime) -> bool:
    """No heartbeat for longer than Asana's 8 h interval plus a margin (a fresh webhook gets that long)."""
    last = hook.last_heartbeat_at or hook.last_event_at or hook.created_at
    return now - last > HEARTBEAT_INTERVAL + HEARTBEAT_MARGIN


def check_tenant(tenant: Tenant, *, clients, now: datetime | None = None) -> WatchReport:
    now = now or timezone.now()
    report = WatchReport()
    asana = clients.asana
    try:
        listed = {str(w["gid"]): w for w in asana.list_webhooks(tenant.asana.workspace_gid)}
    except errors.ConnectorError as exc:
        report.ok = False
        report.lines.append(f"could not list webhooks, nothing changed: {exc}")
        return report
    for hook in registration_rows(tenant):
        remote = listed.get(hook.webhook_gid) if hook.webhook_gid else None
        gap_start = max(filter(None, [hook.last_event_at, hook.last_heartbeat_at, hook.created_at]))
        if remote is None:
            reason = "deleted by Asana" if hook.webhook_gid else "never confirmed"
            result = register(hook, asana)
            report.lines.append(
                f"project {hook.resource_gid}: {reason}; {result.action} {result.detail}".strip()
            )
            if not result.ok:
                report.ok = False
                continue
            report.reregistered += 1
            record_entry(
                tenant=tenant,
                operation="webhook.reregister",
                status="succeeded",
                record_key=hook.resource_gid,
                error=reason,
            )
            report.backfilled += backfill_project(
                tenant, hook.resource_gid, clients=clients, since=gap_start - GAP_OVERLAP, our_clock=True
            )
            continue
        deletion = _when(remote.get("failure_deletion_timestamp"))
        failing = deletion is not None or heartbeat_stale(hook, now)
        AsanaWebhook.objects.filter(pk=hook.pk).update(
            state=AsanaWebhook.State.FAILING if failing else AsanaWebhook.State.ACTIVE,
            last_checked_at=now,
            failure_deletion_timestamp=deletion,
            last_failure_at=_when(remote.get("last_failure_at")) or hook.last_failure_at,
            last_failure_content=str(remote.get("last_failure_content") or "")[:2000],
        )
        if failing:
            report.failing += 1
            why = (
                f"Asana deletes it at {deletion:%Y-%m-%d %H:%M}" if deletion else "no heartbeat for over 9 h"
            )
            report.lines.append(f"project {hook.resource_gid}: failing ({why})")
            report.backfilled += backfill_project(
                tenant, hook.resource_gid, clients=clients, since=gap_start - GAP_OVERLAP, our_clock=True
            )
        elif hook.state == AsanaWebhook.State.FAILING:
            report.lines.append(f"project {hook.resource_gid}: recovered")
            report.backfilled += backfill_project(
                tenant, hook.resource_gid, clients=clients, since=gap_start - GAP_OVERLAP, our_clock=True
            )
    return report


def backfill_project(
    tenant: Tenant, project_gid: str, *, clients, since: datetime, our_clock: bool = False
) -> int:
    """Store each task changed since `since` as a polled event (deduplicated) and process it.

    `modified_since` is compared by Asana on ITS clock: `since` is Asana's time; a time taken on this
    host's clock (a delivery's arrival, say) is passed with `our_clock=True` and converted first."""
    if our_clock:
        since = clients.asana.to_asana_time(since)
    new_ids = []
    for task in clients.asana.iter_project_tasks(project_gid, modified_since=since, fields=POLL_FIELDS):
        key = f"asana:poll:{tenant.pk}:{task['gid']}:{task.get('modified_at')}"
        event_id = store_task_change(tenant, project_gid, task, key, "backfill / catch-up poll")
        if event_id is not None:  # else this change was already picked up
            new_ids.append(event_id)
    for event_id in new_ids:
        task_events.enqueue_asana_event(event_id)
    return len(new_ids)


def backfill_flow(flow: Flow, *, clients, now: datetime | None = None) -> str:
    """The catch-up poll for one approvals flow, from its cursor (moved only after the page is queued).

    The cursor is on Asana's clock (read from its Date header before listing), never on this host's:
    a connector clock minutes ahead of Asana's would otherwise skip approvals for good."""
    now = now or clients.asana.asana_now()
    stream = f"asana_approvals:{flow.pk}:modified_since"
    cursor, _ = Cursor.objects.get_or_create(tenant=flow.tenant, stream=stream)
    since = (_when(cursor.value) or now - FIRST_POLL_LOOKBACK) - GAP_OVERLAP
    count = backfill_project(flow.tenant, flow.asana_project_gid, clients=clients, since=since)
    Cursor.objects.filter(pk=cursor.pk).update(value=now.isoformat())
    return f"{count} changed tasks queued since {since:%Y-%m-%d %H:%M}"
