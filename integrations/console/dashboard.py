"""The health dashboard on the admin index: per tenant and flow, is everything flowing?

Each item has ONE pure rule (`*_health`) → Health(level green|amber|red|grey, reason, url), unit-tested
without a database. `build_dashboard` gathers the inputs in a fixed number of grouped queries
(no N+1: the count does not grow with tenants, flows or records) and applies the rules.

Thresholds are in THRESHOLDS so an operator-facing change is one line. Where a number comes from:
    Asana rate budget used   ApiCall rows to Asana in the last minute ÷ the token's requests_per_minute
                             (the shared GCRA budget keeps only a pacing time, not a count)
    Acumatica API seats      cookie login: sign-ins − sign-outs recorded in the last hour (each open
                             session holds a seat); OAuth holds no seat per call → "n/a under OAuth"
    Sage agent reachability  the connection's last `connector check` / "Test connection" result
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Count, Max, Min, Q
from django.urls import reverse
from django.utils import timezone

from audit.models import ApiCall, AuditEntry, InboundEvent, SyncRun
from audit.retention import retention_days
from integrations.models import AsanaWebhook, Flow, RecordLink, Tenant

GREEN, AMBER, RED, GREY = "green", "amber", "red", "grey"
THRESHOLDS = {
    "poll_late_factor": 3,  # amber when the last good pass is older than 3 poll intervals
    "poll_dead_factor": 12,  # red past 12 intervals
    "backlog_amber_minutes": 5,
    "backlog_red_minutes": 30,
    "failures_red": 10,
    "heartbeat_stale_hours": 9,  # Asana sends a heartbeat every 8 hours (reference/asana.md §6)
    "pending_amber_minutes": 10,
    "rate_amber": 0.7,
    "rate_red": 0.9,
    "agent_stale_hours": 2,
}
WEBHOOK_KINDS = (Flow.Kind.ASANA_APPROVALS, Flow.Kind.ASANA_PURCHASE_REQUESTS)
DOCUMENT_KINDS = (
    Flow.Kind.ACUMATICA_BILLS,
    Flow.Kind.ACUMATICA_PURCHASE_ORDERS,
    Flow.Kind.SAGE100_PO_STATUS,
    Flow.Kind.ACUMATICA_EMPLOYEES,
)


@dataclass(frozen=True)
class Health:
    level: str
    reason: str
    url: str = ""
    value: str = ""


@dataclass
class FlowRow:
    flow: Flow
    items: dict[str, Health] = field(default_factory=dict)


@dataclass
class TenantRow:
    tenant: Tenant
    items: dict[str, Health] = field(default_factory=dict)
    flows: list[FlowRow] = field(default_factory=list)
    can_operate: bool = False  # the viewing user may sync / dry-run this tenant's flows

    @property
    def worst(self) -> str:
        levels = [h.level for h in self.items.values()] + [
            h.level for f in self.flows for h in f.items.values()
        ]
        for level in (RED, AMBER, GREEN):
            if level in levels:
                return level
        return GREY


# ---- pure rules -----------------------------------------------------------------------------------


def _age(now: datetime, then: datetime) -> str:
    seconds = int((now - then).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def poll_health(
    last_success: datetime | None,
    interval_minutes: int,
    enabled: bool,
    now: datetime,
    url: str = "",
    polled: bool = True,
    on_since: datetime | None = None,
) -> Health:
    """`on_since`: when the flow was switched on (or created); a flow younger than the late threshold
    that has not passed yet is waiting for its first pass, not failing."""
    if not enabled:
        return Health(GREY, "flow disabled", url, "—")
    if not polled:
        return Health(GREY, "event-driven flow (no polling pass)", url, "—")
    if last_success is None and on_since is not None:
        waited = now - on_since
        interval = timedelta(minutes=max(1, interval_minutes))
        if waited <= interval * THRESHOLDS["poll_late_factor"]:
            return Health(
                GREY,
                f"switched on {_age(now, on_since)}: the first pass runs within {interval_minutes} min",
                url,
                "first pass due",
            )
        if waited <= interval * THRESHOLDS["poll_dead_factor"]:
            return Health(
                AMBER,
                f"switched on {_age(now, on_since)} and no pass yet: check that the worker runs "
                "(Cluster above), or select the flow under Flows and run “Sync now”",
                url,
                "late",
            )
    if last_success is None:
        return Health(
            RED,
            "no successful pass yet: open the flow's runs for the error, or select the flow under "
            "Flows and run “Sync now” (a dry run shows the plan first)",
            url,
            "never",
        )
    late = now - last_success
    interval = timedelta(minutes=max(1, interval_minutes))
    value = _age(now, last_success)
    if late > interval * THRESHOLDS["poll_dead_factor"]:
        return Health(RED, f"last good pass {value}; polling every {interval_minutes} min", url, value)
    if late > interval * THRESHOLDS["poll_late_factor"]:
        return Health(AMBER, f"last good pass {value}; polling every {interval_minutes} min", url, value)
    return Health(GREEN, f"last good pass {value}", url, value)


def backlog_health(waiting: int, oldest: datetime | None, now: datetime, url: str = "") -> Health:
    if not waiting or oldest is None:
        return Health(GREEN, "nothing waiting", url, "0")
    age = now - oldest
    text = f"{waiting} event(s) waiting, oldest {_age(now, oldest)}"
    if age > timedelta(minutes=THRESHOLDS["backlog_red_minutes"]):
        return Health(RED, text + ": the workers are not keeping up or not running", url, str(waiting))
    if age > timedelta(minutes=THRESHOLDS["backlog_amber_minutes"]):
        return Health(AMBER, text, url, str(waiting))
    return Health(GREEN, text, url, str(waiting))


def unreadable_health(unreadable_7d: int, url: str = "") -> Health:
    """Authentic pushes none of whose rows name a document (acumatica/push_rows.py): answered 200 so
    Acumatica does not re-send them, so only this count tells the operator to fix the inquiry."""
    if not unreadable_7d:
        return Health(GREEN, "every push in the last 7 days was readable", url, "0")
    return Health(
        AMBER,
        f"{unreadable_7d} push notification(s) in the last 7 days named no document: check the "
        "generic inquiry's key columns",
        url,
        str(unreadable_7d),
    )


def approvals_health(
    needs_person: int, changed_7d: int, refused_7d: int, url: str, changed_url: str
) -> Health:
    """Money safety at a glance: records whose create outcome waits for a person (red: the document has
    no task until someone decides), documents changed after approval and releases refused (7 days)."""
    if needs_person:
        return Health(
            RED,
            f"{needs_person} record(s) wait for a person: a create's outcome is unknown and its candidate "
            "task cannot be proven the document's — adopt it or create anew",
            url,
            str(needs_person),
        )
    if changed_7d or refused_7d:
        return Health(
            AMBER,
            f"{changed_7d} document(s) changed after approval and {refused_7d} release(s) refused in 7 days: "
            "a new approval was asked for on each task",
            changed_url,
            str(changed_7d + refused_7d),
        )
    return Health(
        GREEN, "no approval changed or refused in 7 days; nothing waits for a person", changed_url, "0"
    )


def history_health(
    oldest_entry: datetime | None,
    oldest_call: datetime | None,
    now: datetime,
    url: str = "",
    days: dict[str, int] | None = None,
) -> Health:
    """How far back the audit trail goes after retention purges (audit/retention.py)."""
    days = days or {}
    if oldest_entry is None:
        return Health(GREY, "no audit history yet", url, "—")
    text = f"audit entries since {oldest_entry:%Y-%m-%d}"
    if "effects" in days:
        text += f" (effects kept {days['effects']} days)"
    if oldest_call is not None:
        text += f", API calls since {oldest_call:%Y-%m-%d}"
        if "api_calls" in days:
            text += f" (kept {days['api_calls']} days)"
    return Health(GREEN, text, url, f"{(now - oldest_entry).days} days")


def failures_health(failed_24h: int, url: str = "") -> Health:
    if not failed_24h:
        return Health(GREEN, "no failures in the last 24 h", url, "0")
    level = RED if failed_24h >= THRESHOLDS["failures_red"] else AMBER
    return Health(
        level,
        f"{failed_24h} failed operation(s) in the last 24 h: open them for each error, fix the cause, "
        "then replay the records",
        url,
        str(failed_24h),
    )


def setup_health(
    has_acumatica: bool,
    acumatica_ok: bool | None,
    acumatica_message: str,
    has_asana: bool,
    asana_ok: bool | None,
    setup_step: int | None,
    switched_on: bool,
    wizard_url: Any,
) -> Health:
    """Is the tenant set up and are its connections verified? Every red says which wizard step fixes
    it, and links there (`wizard_url(step)`)."""
    if not has_acumatica:
        return Health(
            RED, "no Acumatica connection: set it up in the setup wizard, step 1", wizard_url(1), "not set up"
        )
    if acumatica_ok is False:
        first = next((line[5:] for line in acumatica_message.splitlines() if line.startswith("FAIL ")), "")
        return Health(
            RED,
            f"the last Acumatica test failed ({first[:160]}): correct the credentials in the setup "
            "wizard, step 1",
            wizard_url(1),
            "check failed",
        )
    if not has_asana:
        return Health(
            RED, "no Asana connection: add the token in the setup wizard, step 2", wizard_url(2), "no Asana"
        )
    if asana_ok is False:
        return Health(
            RED,
            "the last Asana test failed: enter a new token in the setup wizard, step 2",
            wizard_url(2),
            "check failed",
        )
    if setup_step is not None and not switched_on:
        return Health(
            AMBER,
            f"setup stopped at step {setup_step}: resume it in the setup wizard (the flows are off "
            "until step 5)",
            wizard_url(setup_step),
            f"step {setup_step} of 5",
        )
    if acumatica_ok is None:
        return Health(
            AMBER, "Acumatica never tested: test it in the setup wizard, step 1", wizard_url(1), "untested"
        )
    return Health(GREEN, "Acumatica and Asana verified", wizard_url(setup_step or 1), "ready")


def quarantine_health(quarantined: int, url: str = "") -> Health:
    if not quarantined:
        return Health(GREEN, "no quarantined records", url, "0")
    return Health(AMBER, f"{quarantined} record(s) wait for a mapping fix", url, str(quarantined))


def webhook_health(hooks: list[Any], now: datetime, url: str = "") -> Health:
    """`hooks`: AsanaWebhook rows (or anything with their fields) of one tenant."""
    if not hooks:
        return Health(GREY, "no Asana webhooks registered", url, "—")
    gone = [h for h in hooks if h.state == AsanaWebhook.State.GONE]
    if gone:
        return Health(RED, f"{len(gone)} webhook(s) gone: Asana deleted them; re-register", url, "gone")
    doomed = [h for h in hooks if h.failure_deletion_timestamp]
    if doomed:
        when = min(h.failure_deletion_timestamp for h in doomed)
        return Health(
            RED,
            f"Asana will delete a failing webhook at {when:%Y-%m-%d %H:%M} UTC",
            url,
            "deletion scheduled",
        )
    failing = [
        h
        for h in hooks
        if h.state == AsanaWebhook.State.FAILING
        or h.last_failure_at
        and (not h.last_event_at or h.last_failure_at > h.last_event_at)
    ]
    if failing:
        return Health(RED, f"{len(failing)} webhook(s) failing deliveries", url, "failing")
    pending = [h for h in hooks if h.state == AsanaWebhook.State.PENDING]
    if pending and any(
        h.pending_since and now - h.pending_since > timedelta(minutes=THRESHOLDS["pending_amber_minutes"])
        for h in pending
    ):
        return Health(AMBER, "a webhook is still waiting for its handshake", url, "pending")
    beats = [h.last_heartbeat_at or h.last_event_at for h in hooks if h.state == AsanaWebhook.State.ACTIVE]
    known = [b for b in beats if b]
    if beats and len(known) == len(beats):
        oldest = min(known)
        if now - oldest > timedelta(hours=THRESHOLDS["heartbeat_stale_hours"]):
            return Health(AMBER, f"no heartbeat since {_age(now, oldest)}", url, _age(now, oldest))
        return Health(GREEN, f"last heartbeat {_age(now, max(known))}", url, _age(now, max(known)))
    return Health(
        GREEN if not pending else AMBER, f"{len(hooks)} webhook(s), no heartbeat yet", url, "active"
    )


def rate_health(calls_last_minute: int, per_minute: int | None, url: str = "") -> Health:
    if not per_minute:
        return Health(GREY, "no Asana connection", url, "—")
    used = calls_last_minute / per_minute
    value = f"{calls_last_minute}/{per_minute} per min"
    level = RED if used >= THRESHOLDS["rate_red"] else AMBER if used >= THRESHOLDS["rate_amber"] else GREEN
    return Health(level, f"{used:.0%} of the token's budget used in the last minute", url, value)


def seats_health(
    auth_mode: str | None,
    open_sessions: int,
    max_concurrency: int,
    url: str = "",
    paused_until: datetime | None = None,
    now: datetime | None = None,
) -> Health:
    """`max_concurrency` here is the connection's `max_api_sessions` (integrations/acumatica/seats.py)."""
    if auth_mode is None:
        return Health(GREY, "no Acumatica connection", url, "—")
    if paused_until is not None and now is not None and paused_until > now:
        return Health(
            RED,
            f"API Login Limit: sign-ins paused until {paused_until:%H:%M} UTC (Test connections resumes)",
            url,
            "paused",
        )
    if auth_mode != "cookie":
        return Health(GREY, "one OAuth session shared by every worker (one seat)", url, "n/a (OAuth)")
    value = f"{open_sessions}/{max_concurrency}"
    if open_sessions > max_concurrency:
        return Health(
            RED, f"{open_sessions} sessions open, more than the {max_concurrency} allowed", url, value
        )
    if open_sessions and open_sessions == max_concurrency:
        return Health(AMBER, "every allowed session is in use", url, value)
    return Health(GREEN, f"{open_sessions} session(s) open", url, value)


def agent_health(
    has_connection: bool,
    checked_at: datetime | None,
    ok: bool | None,
    message: str,
    now: datetime,
    url: str = "",
) -> Health:
    if not has_connection:
        return Health(GREY, "no Sage 100 connection", url, "—")
    if checked_at is None:
        return Health(AMBER, "never checked: run Test connection", url, "unknown")
    if not ok:
        return Health(
            RED, f"unreachable at the last check ({_age(now, checked_at)}): {message[:200]}", url, "down"
        )
    if now - checked_at > timedelta(hours=THRESHOLDS["agent_stale_hours"]):
        return Health(AMBER, f"reachable at the last check, {_age(now, checked_at)}", url, "stale")
    return Health(GREEN, f"reachable ({_age(now, checked_at)})", url, "up")


# ---- gathering (a fixed number of grouped queries) -------------------------------------------------


def _changelist(model: str, **filters: Any) -> str:
    url = reverse(f"admin:{model}_changelist")
    return f"{url}?{urlencode(filters)}" if filters else url


def build_dashboard(user: Any = None, *, tenants=None, now: datetime | None = None) -> list[TenantRow]:
    """The rows of the tenants `user` sees (every active tenant when no user is given: commands)."""
    from .permissions import can_run_sync
    from .tenancy import scope

    now = now or timezone.now()
    base = tenants if tenants is not None else Tenant.objects.filter(active=True)
    if user is not None:
        base = scope(base, user)
    tenants = list(base.select_related("acumatica", "asana", "sage100", "setup").prefetch_related("flows"))
    ids = [t.pk for t in tenants]
    day_ago = now - timedelta(hours=24)
    last_success = dict(
        SyncRun.objects.filter(
            tenant_id__in=ids, status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL]
        )
        # A dry run plans without writing, so it is no pass — except the roster's report-only run,
        # which is that flow's normal pass (flows/roster.py, `apply_on_schedule` off by default).
        .exclude(trigger=SyncRun.Trigger.REPLAY)
        .exclude(Q(trigger=SyncRun.Trigger.DRY_RUN) & ~Q(flow__kind=Flow.Kind.ACUMATICA_EMPLOYEES))
        .values_list("flow_id")
        .annotate(Max("finished_at"))
    )
    # One query per table: per (tenant, flow), the counts each tile needs.
    week = now - timedelta(days=7)
    failed_q = Q(status=AuditEntry.Status.FAILED, created_at__gte=day_ago)
    changed_q = Q(operation="changed_after_approval")
    refused_q = Q(operation__endswith=".release", status=AuditEntry.Status.QUARANTINED)
    failures: dict[Any, int] = {}
    approvals: dict[int, dict[str, int]] = {}
    for row in (
        AuditEntry.objects.filter(tenant_id__in=ids, created_at__gte=week)
        .filter(failed_q | changed_q | refused_q)
        .values("tenant_id", "flow_id")
        .annotate(
            failed=Count("id", filter=failed_q),
            changed=Count("id", filter=changed_q),
            refused=Count("id", filter=refused_q),
        )
    ):
        failures[row["flow_id"]] = failures.get(row["flow_id"], 0) + row["failed"]
        mine = approvals.setdefault(row["tenant_id"], {"changed": 0, "refused": 0})
        mine["changed"] += row["changed"]
        mine["refused"] += row["refused"]
    quarantined: dict[Any, int] = {}
    needs_person: dict[int, int] = {}
    for row in (
        RecordLink.objects.filter(
            tenant_id__in=ids, state__in=[RecordLink.State.QUARANTINED, RecordLink.State.NEEDS_PERSON]
        )
        .values("tenant_id", "flow_id", "state")
        .annotate(n=Count("id"))
    ):
        if row["state"] == RecordLink.State.QUARANTINED:
            quarantined[row["flow_id"]] = quarantined.get(row["flow_id"], 0) + row["n"]
        else:
            needs_person[row["tenant_id"]] = needs_person.get(row["tenant_id"], 0) + row["n"]
    waiting_q = Q(status__in=[InboundEvent.Status.RECEIVED, InboundEvent.Status.QUEUED])
    unreadable_q = Q(status=InboundEvent.Status.UNREADABLE, received_at__gte=now - timedelta(days=7))
    backlog = {
        row["tenant_id"]: row
        for row in InboundEvent.objects.filter(tenant_id__in=ids)
        .filter(waiting_q | unreadable_q)
        .values("tenant_id")
        .annotate(
            n=Count("id", filter=waiting_q),
            oldest=Min("received_at", filter=waiting_q),
            unreadable=Count("id", filter=unreadable_q),
        )
    }
    # Retention purges by age for every tenant at once, so the horizon is one date per table (an index
    # lookup each: MIN over the indexed timestamp, never a scan per tenant).
    oldest_entry = AuditEntry.objects.aggregate(v=Min("created_at"))["v"]
    oldest_call = ApiCall.objects.aggregate(v=Min("started_at"))["v"]
    retention = retention_days()
    hooks: dict[int, list[AsanaWebhook]] = {}
    for hook in AsanaWebhook.objects.filter(tenant_id__in=ids):
        hooks.setdefault(hook.tenant_id, []).append(hook)
    calls = {
        row["tenant_id"]: row
        for row in ApiCall.objects.filter(tenant_id__in=ids, started_at__gte=now - timedelta(hours=1))
        .filter(Q(system="asana") | Q(system="acumatica", url__contains="/entity/auth/"))
        .values("tenant_id")
        .annotate(
            asana=Count("id", filter=Q(system="asana", started_at__gte=now - timedelta(minutes=1))),
            logins=Count("id", filter=Q(url__contains="/entity/auth/login", status_code__lt=300)),
            logouts=Count("id", filter=Q(url__contains="/entity/auth/logout")),
        )
    }
    rows = []
    for tenant in tenants:
        row = TenantRow(tenant, can_operate=user is not None and can_run_sync(user, tenant.pk))
        t = tenant.pk
        acu = getattr(tenant, "acumatica", None)
        asana = getattr(tenant, "asana", None)
        setup = getattr(tenant, "setup", None)
        slug = tenant.slug
        row.items["setup"] = setup_health(
            acu is not None,
            getattr(acu, "last_check_ok", None),
            getattr(acu, "last_check_message", ""),
            asana is not None,
            getattr(asana, "last_check_ok", None),
            setup.step if setup else None,
            bool(setup and setup.switched_on_at),
            lambda step, slug=slug: reverse("admin:setup_step", args=[slug, step]),
        )
        waiting = backlog.get(t, {})
        row.items["backlog"] = backlog_health(
            waiting.get("n", 0),
            waiting.get("oldest"),
            now,
            _changelist("audit_inboundevent", tenant__id__exact=t, status__exact="queued"),
        )
        row.items["approvals"] = approvals_health(
            needs_person.get(t, 0),
            approvals.get(t, {}).get("changed", 0),
            approvals.get(t, {}).get("refused", 0),
            _changelist("integrations_recordlink", tenant__id__exact=t, state__exact="needs_person"),
            _changelist("audit_auditentry", tenant__id__exact=t, operation="changed_after_approval"),
        )
        row.items["unreadable"] = unreadable_health(
            waiting.get("unreadable", 0),
            _changelist("audit_inboundevent", tenant__id__exact=t, status__exact="unreadable"),
        )
        row.items["history"] = history_health(
            oldest_entry,
            oldest_call,
            now,
            _changelist("audit_auditentry", tenant__id__exact=t),
            retention,
        )
        row.items["webhooks"] = webhook_health(
            hooks.get(t, []), now, _changelist("integrations_asanawebhook", tenant__id__exact=t)
        )
        consumers = [f for f in tenant.flows.all() if f.enabled and f.kind in WEBHOOK_KINDS]
        if not hooks.get(t) and consumers:
            row.items["webhooks"] = Health(
                AMBER,
                f"no Asana webhook for {consumers[0].name}: approvals wait for the catch-up poll — register "
                "them in the setup wizard, step 5",
                reverse("admin:setup_step", args=[tenant.slug, 5]) if setup else row.items["webhooks"].url,
                "none",
            )
        row.items["rate"] = rate_health(
            calls.get(t, {}).get("asana", 0),
            asana.requests_per_minute if asana else None,
            _changelist("audit_apicall", tenant__id__exact=t, system="asana"),
        )
        c = calls.get(t, {})
        row.items["seats"] = seats_health(
            acu.auth_mode if acu else None,
            max(0, c.get("logins", 0) - c.get("logouts", 0)),
            acu.max_api_sessions if acu else 0,
            _changelist("audit_apicall", tenant__id__exact=t, system="acumatica"),
            getattr(acu, "seats_paused_until", None),
            now,
        )
        sage = getattr(tenant, "sage100", None)
        row.items["agent"] = agent_health(
            sage is not None,
            getattr(sage, "last_checked_at", None),
            getattr(sage, "last_check_ok", None),
            getattr(sage, "last_check_message", ""),
            now,
            reverse("admin:integrations_tenant_change", args=[t]),
        )
        for flow in tenant.flows.all():
            f = FlowRow(flow)
            f.items["poll"] = poll_health(
                last_success.get(flow.pk),
                flow.poll_interval_minutes,
                flow.enabled,
                now,
                _changelist("audit_syncrun", flow__id__exact=flow.pk),
                polled=flow.kind in DOCUMENT_KINDS,
                on_since=max(filter(None, (flow.created_at, getattr(setup, "switched_on_at", None)))),
            )
            f.items["failures"] = failures_health(
                failures.get(flow.pk, 0),
                _changelist("audit_auditentry", flow__id__exact=flow.pk, status__exact="failed"),
            )
            f.items["quarantined"] = quarantine_health(
                quarantined.get(flow.pk, 0),
                _changelist("integrations_recordlink", flow__id__exact=flow.pk, state__exact="quarantined"),
            )
            row.flows.append(f)
        rows.append(row)
    return rows
