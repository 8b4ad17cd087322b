"""Operator alerts: raised, deduplicated, e-mailed and optionally filed as an Asana ops task.

    raise_alert(tenant, kind, subject, message, link="")
        One Alert row per (tenant, kind, subject). A repeat bumps `count` and `last_raised_at`; a
        notification goes out on the first raise and again only after COOLDOWN (a webhook failing for a
        day sends a handful of mails, not thousands). A resolved alert raised again is re-opened.
    resolve_alerts(tenant, kind, subjects_still_bad)
        Marks resolved the alerts of that kind whose condition cleared.
    Recording an alert is the data floor's (audit/alerting.py: the system floor records one where it
    happens, e.g. the Acumatica seats pause); notifying is this module's, at the raise or in the sweep.
    sweep()  (django-q2 task, every SWEEP_MINUTES: `ensure_schedule()`)
        Reads the state the flows already keep and raises what it finds — no flow module needs an
        edit, and writes made with QuerySet.update() are seen too:
            webhook failing or gone      AsanaWebhook.state / failure_deletion_timestamp
            mapping drift                Flow.mapping_status == broken
            a record failing repeatedly  RecordLink.failure_count >= RECORD_FAILURES
            the agent unreachable        Sage100Connection.last_check_ok is False
            a token refresh failing      ApiCall rows to a token endpoint answered >= 400 in the last hour
Notifications: e-mail to settings.ALERT_EMAILS through Django's mail settings; and, when
settings.ALERT_ASANA_PROJECT_GID is set, a task in that Asana project through the tenant's client.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from audit.alerting import record_alert, resolve_alerts
from audit.models import Alert, ApiCall
from integrations.acumatica import seats
from integrations.base import schedules

log = logging.getLogger(__name__)

COOLDOWN = timedelta(hours=6)
RECORD_FAILURES = 3
SWEEP_MINUTES = 5
RAISED_ELSEWHERE = (Alert.Kind.RECONCILIATION,)
TOKEN_PATHS = ("/identity/connect/token", "/oauth_token", "/-/oauth_token", "/entity/auth/login")


def raise_alert(tenant: Any, kind: str, subject: str, message: str = "", link: str = "") -> Alert:
    """Record (or bump) the alert and notify when it is new or its cooldown has passed."""
    alert = record_alert(tenant, kind, subject, message, link)
    notify_if_due(alert)
    return alert


def notify_if_due(alert: Alert, now=None) -> bool:
    """Notify once per COOLDOWN: the notification is claimed first, so two workers raising at once send
    it once."""
    now = now or timezone.now()
    if alert.resolved_at is not None:
        return False
    if alert.last_notified_at is not None and now - alert.last_notified_at < COOLDOWN:
        return False
    claimed = Alert.objects.filter(pk=alert.pk, last_notified_at=alert.last_notified_at).update(
        last_notified_at=now
    )
    if claimed:
        _notify(alert)
        alert.refresh_from_db()
    return bool(claimed)


def _notify(alert: Alert) -> None:
    text = f"[ml-connector] {alert.tenant.slug}: {alert.get_kind_display()} — {alert.subject}"
    body = f"{alert.message}\n\n{settings.PUBLIC_BASE_URL}{alert.link}\n(raised {alert.count} time(s))"
    recipients = list(getattr(settings, "ALERT_EMAILS", []) or [])
    if recipients:
        try:
            send_mail(text[:200], body, settings.DEFAULT_FROM_EMAIL, recipients)
        except Exception:  # noqa: BLE001 - an alert must never break the flow that raised it
            log.exception("alert e-mail failed: %s", text)
    project = getattr(settings, "ALERT_ASANA_PROJECT_GID", "")
    if project and hasattr(alert.tenant, "asana"):
        try:
            from integrations.asana.client import client_for

            task = client_for(alert.tenant.asana).create_task(
                name=text[:1024], project_gid=project, notes=body
            )
            Alert.objects.filter(pk=alert.pk).update(notified_task_gid=task.get("gid", ""))
        except Exception:  # noqa: BLE001
            log.exception("alert task in Asana failed: %s", text)


def _admin(name: str, *args: Any) -> str:
    return reverse(f"admin:{name}", args=args)


def sweep(now=None) -> str:
    """Raise and resolve the alerts of every active tenant from the state the flows keep."""
    from integrations.models import (
        AcumaticaConnection,
        AsanaWebhook,
        Flow,
        RecordLink,
        Sage100Connection,
        Tenant,
    )

    now = now or timezone.now()
    raised = 0
    for tenant in Tenant.objects.filter(active=True):
        # Reconciliation alerts are raised and resolved by the reconciliation run, not by this sweep.
        found: dict[str, dict[str, tuple[str, str]]] = {
            k: {} for k in Alert.Kind.values if k not in RAISED_ELSEWHERE
        }
        for hook in AsanaWebhook.objects.filter(tenant=tenant).filter(
            Q(state__in=[AsanaWebhook.State.FAILING, AsanaWebhook.State.GONE])
            | Q(failure_deletion_timestamp__isnull=False)
        ):
            found[Alert.Kind.WEBHOOK_FAILING][f"webhook on {hook.resource_gid}"] = (
                f"state {hook.state}; last failure: {hook.last_failure_content[:300]}"
                + (
                    f"; Asana deletes it at {hook.failure_deletion_timestamp:%Y-%m-%d %H:%M}"
                    if hook.failure_deletion_timestamp
                    else ""
                ),
                _admin("integrations_asanawebhook_change", hook.pk),
            )
        for flow in Flow.objects.filter(
            tenant=tenant, enabled=True, mapping_status=Flow.MappingStatus.BROKEN
        ):
            found[Alert.Kind.MAPPING_DRIFT][f"flow {flow.name}"] = (
                flow.mapping_status_reason,
                _admin("integrations_flow_change", flow.pk),
            )
        for link in RecordLink.objects.filter(tenant=tenant, failure_count__gte=RECORD_FAILURES)[:200]:
            found[Alert.Kind.RECORD_FAILING][str(link)] = (
                f"failed {link.failure_count} times: {link.state_reason[:300]}",
                _admin("integrations_recordlink_lineage", link.pk),
            )
        sage = Sage100Connection.objects.filter(tenant=tenant, last_check_ok=False).first()
        if sage:
            found[Alert.Kind.AGENT_UNREACHABLE]["Sage 100 agent"] = (
                sage.last_check_message[:500],
                _admin("integrations_tenant_change", tenant.pk),
            )
        paused = AcumaticaConnection.objects.filter(tenant=tenant, seats_paused_until__gt=now).first()
        if paused:
            found[seats.ALERT_KIND][seats.ALERT_SUBJECT] = (
                seats.pause_message(paused.auth_mode, paused.seats_paused_until),
                _admin("integrations_tenant_change", tenant.pk),
            )
        token_q = Q()
        for p in TOKEN_PATHS:
            token_q |= Q(url__contains=p)
        for call in ApiCall.objects.filter(
            tenant=tenant, status_code__gte=400, started_at__gte=now - timedelta(hours=1)
        ).filter(token_q)[:5]:
            found[Alert.Kind.TOKEN_REFRESH][f"{call.system} token"] = (
                f"{call.method} {call.url} answered {call.status_code}: {call.response_excerpt[:300]}",
                _admin("audit_apicall_change", call.pk),
            )
        for kind, subjects in found.items():
            for subject, (message, link) in subjects.items():
                raise_alert(tenant, kind, subject, message, link)
                raised += 1
            resolve_alerts(tenant, kind, set(subjects))
    # Alerts recorded where they happened (the system floor records, never notifies: the Acumatica seats
    # pause) are notified here, within one sweep.
    for alert in Alert.objects.filter(resolved_at__isnull=True, last_notified_at__isnull=True):
        notify_if_due(alert, now)
    return f"{raised} alert condition(s) found"


def ensure_schedule() -> str:
    return schedules.ensure(
        "alerts:sweep", "integrations.flows.operations.alerts.sweep", minutes=SWEEP_MINUTES
    )
