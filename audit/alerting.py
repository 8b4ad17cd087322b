"""Recording an operator alert: one Alert row per (tenant, kind, subject), deduplicated. A repeat bumps
`count` and `last_raised_at`; a resolved alert raised again is re-opened. Notification (e-mail, an Asana
ops task, the cooldown) is integrations/flows/operations/alerts.py's: a condition found on a lower floor
(the Acumatica seats pause) is recorded here at once and notified by the next sweep."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import Alert


def record_alert(tenant: Any, kind: str, subject: str, message: str = "", link: str = "") -> Alert:
    now = timezone.now()
    subject = subject[:200]
    try:
        with transaction.atomic():
            return Alert.objects.create(
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
        return Alert.objects.get(tenant=tenant, kind=kind, subject=subject)


def resolve_alerts(tenant: Any, kind: str, still_bad: set[str]) -> int:
    """Mark resolved the open alerts of that kind whose subject is no longer bad."""
    return (
        Alert.objects.filter(tenant=tenant, kind=kind, resolved_at__isnull=True)
        .exclude(subject__in=still_bad)
        .update(resolved_at=timezone.now())
    )
