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
from integrations.flows.operations.rules import (  # noqa: F401  (re-read by the console's templates and tests)
    AMBER,
    DOCUMENT_KINDS,
    GREEN,
    GREY,
    RED,
    THRESHOLDS,
    Health,
    _age,
    agent_health,
    approvals_health,
    backlog_health,
    failures_health,
    history_health,
    poll_health,
    quarantine_health,
    rate_health,
    seats_health,
    setup_health,
    unreadable_health,
    webhook_health,
)
from integrations.models import AsanaWebhook, Flow, RecordLink, Tenant

# Flows that consume Asana task events: without a webhook they wait for the catch-up poll.
WEBHOOK_KINDS = (Flow.Kind.ASANA_APPROVALS, Flow.Kind.ASANA_PURCHASE_REQUESTS)


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
    ok_q = Q(status__in=[SyncRun.Status.SUCCEEDED, SyncRun.Status.PARTIAL])
    run_failed_q = Q(status__in=[SyncRun.Status.FAILED, SyncRun.Status.ABANDONED])
    passes = (
        SyncRun.objects.filter(tenant_id__in=ids)
        .filter(ok_q | run_failed_q)
        # A dry run plans without writing, so it is no pass — except the roster's report-only run,
        # which is that flow's normal pass (flows/roster.py, `apply_on_schedule` off by default).
        .exclude(trigger=SyncRun.Trigger.REPLAY)
        .exclude(Q(trigger=SyncRun.Trigger.DRY_RUN) & ~Q(flow__kind=Flow.Kind.ACUMATICA_EMPLOYEES))
        .values("flow_id")
        .annotate(last=Max("finished_at", filter=ok_q), failed=Count("id", filter=run_failed_q))
    )
    last_success: dict[Any, Any] = {}
    # A flow whose pass has failed is not "waiting for its first pass": it is red with its runs linked.
    failed_flows: set[Any] = set()
    for row in passes:
        if row["last"] is not None:
            last_success[row["flow_id"]] = row["last"]
        if row["failed"]:
            failed_flows.add(row["flow_id"])
    # One query per table: per (tenant, flow), the counts each tile needs.
    week = now - timedelta(days=7)
    failed_q = Q(status=AuditEntry.Status.FAILED, created_at__gte=day_ago)
    changed_q = Q(operation="changed_after_approval")
    # A refused approval: a bill / PO release, or a purchase request refused by segregation of duties
    # (a bill's refusal has its own `.release` row, so only the purchase requests' control rows count).
    refused_q = Q(operation__endswith=".release", status=AuditEntry.Status.QUARANTINED) | Q(
        operation="controls.segregation_of_duties",
        status=AuditEntry.Status.QUARANTINED,
        flow__kind=Flow.Kind.ASANA_PURCHASE_REQUESTS,
    )
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
        setup = getattr(tenant, "setup", None)
        row.items["setup"] = setup_health(
            getattr(tenant, "acumatica", None) is not None,
            getattr(getattr(tenant, "acumatica", None), "last_check_ok", None),
            getattr(getattr(tenant, "acumatica", None), "last_check_message", ""),
            getattr(tenant, "asana", None) is not None,
            getattr(getattr(tenant, "asana", None), "last_check_ok", None),
            setup.step if setup else None,
            bool(setup and setup.switched_on_at),
            lambda step, slug=tenant.slug: reverse("admin:setup_step", args=[slug, step]),
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
        asana = getattr(tenant, "asana", None)
        row.items["rate"] = rate_health(
            calls.get(t, {}).get("asana", 0),
            asana.requests_per_minute if asana else None,
            _changelist("audit_apicall", tenant__id__exact=t, system="asana"),
        )
        acu = getattr(tenant, "acumatica", None)
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
                on_since=None
                if flow.pk in failed_flows
                else max(filter(None, (flow.created_at, getattr(setup, "switched_on_at", None)))),
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
