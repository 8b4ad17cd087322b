"""Operator alerts: raised, deduplicated, e-mailed and optionally filed as an Asana ops task.

    raise_alert(tenant, kind, subject, message, link="")
        One Alert row per (tenant, kind, subject). A repeat bumps `count` and `last_raised_at`; a
        notification goes out on the first raise and again only after COOLDOWN (a webhook failing for a
        day sends a handful of mails, not thousands). A resolved alert raised again is re-opened.
    resolve_alerts(tenant, kind, subjects_still_bad)
        Marks resolved the alerts of that kind whose condition cleared.
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
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from .models import Alert, ApiCall

log = logging.getLogger(__name__)

COOLDOWN = timedelta(hours=6)
RECORD_FAILURES = 3
SWEEP_MINUTES = 5
RAISED_ELSEWHERE = (Alert.Kind.RECONCILIATION,)
TOKEN_PATHS = ("/identity/connect/token", "/oauth_token", "/-/oauth_token", "/entity/auth/login")


def raise_alert(tenant: Any, kind: str, subject: str, message: str = "", link: str = "") -> Alert:
    """Record (or bump) the alert and notify when it is new or its cooldown has passed."""
    now = timezone.now()
    subject = subject[:200]
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                tenant=tenant, kind=kind, subject=subject, message=message, link=link, last_raised_at=now
            )
    except IntegrityError:
        Alert.objects.filter(tenant=tenant, kind=kind, subject=subject).update(
            count=F("count") + 1,
            last_raised_at=now,
            message=message,
            link=link or F("link"),
            resolved_at=None,
        )
        alert = Alert.objects.get(tenant=tenant, kind=kind, subject=subject)
    if alert.last_notified_at is None or now - alert.last_notified_at >= COOLDOWN:
        # Claim the notification first, so two workers raising at once send it once.
        claimed = Alert.objects.filter(pk=alert.pk, last_notified_at=alert.last_notified_at).update(
            last_notified_at=now
        )
        if claimed:
            _notify(alert)
            alert.refresh_from_db()
    return alert


def resolve_alerts(tenant: Any, kind: str, still_bad: set[str]) -> int:
    return (
        Alert.objects.filter(tenant=tenant, kind=kind, resolved_at__isnull=True)
        .exclude(subject__in=still_bad)
        .update(resolved_at=timezone.now())
    )


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
    from integrations.models import AsanaWebhook, Flow, RecordLink, Sage100Connection, Tenant

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
    return f"{raised} alert condition(s) found"


def ensure_schedule() -> str:
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="alerts:sweep",
        defaults={
            "func": "audit.alerts.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": SWEEP_MINUTES,
            "repeats": -1,
        },
    )
    return f"alerts:sweep every {SWEEP_MINUTES} min"
