"""One reconciliation run of a tenant: compare, keep the report (ReconciliationRun + its differences),
and raise one alert for each class of difference that appears (none in the tenant's previous run)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from audit.alerting import resolve_alerts
from audit.models import Alert, ReconciliationDifference, ReconciliationRun
from integrations.flows import clients as flow_clients
from integrations.flows.clients import Clients
from integrations.flows.operations.alerts import raise_alert
from integrations.models import Tenant

from .compare import DIFFERENCES, compare

log = logging.getLogger(__name__)


def clients_for(tenant: Tenant) -> Clients:
    """The one client factory of the flows (tests replace `integrations.flows.clients.clients_for`)."""
    return flow_clients.clients_for(tenant)


def reconcile(
    tenant: Tenant, *, clients: Clients | None = None, actor: str = "schedule"
) -> ReconciliationRun:
    clients = clients or clients_for(tenant)
    previous = (
        ReconciliationRun.objects.filter(tenant=tenant, finished_at__isnull=False).order_by("-pk").first()
    )
    run = ReconciliationRun.objects.create(tenant=tenant, triggered_by=actor)
    try:
        result = compare(tenant, clients)
    except Exception as exc:  # noqa: BLE001 - a run that dies still ends, with why
        log.exception("reconciliation of %s failed", tenant.slug)
        ReconciliationRun.objects.filter(pk=run.pk).update(
            status=ReconciliationRun.Status.FAILED,
            finished_at=timezone.now(),
            skipped=[{"difference": "*", "why": f"{type(exc).__name__}: {exc}"}],
        )
        run.refresh_from_db()
        return run
    with transaction.atomic():
        ReconciliationDifference.objects.bulk_create(
            ReconciliationDifference(
                run=run,
                tenant=tenant,
                flow=f.flow,
                difference=f.difference,
                record_link=f.link,
                key=f.key[:200],
                acumatica_type=f.acumatica_type,
                acumatica_ref=f.acumatica_ref,
                asana_task_gid=f.asana_task_gid,
                sage_po_number=f.sage_po_number,
                amount=f.amount,
                detail=f.detail,
                data=f.data,
            )
            for f in result.found
        )
        run.totals = result.totals()
        run.skipped = result.skipped
        run.status = (
            ReconciliationRun.Status.PARTIAL
            if any(s["why"].count("could not read") for s in result.skipped)
            else ReconciliationRun.Status.SUCCEEDED
        )
        run.finished_at = timezone.now()
        run.save(update_fields=["totals", "skipped", "status", "finished_at"])
    _alert(tenant, run, previous)
    return run


def new_classes(run: ReconciliationRun, previous: ReconciliationRun | None) -> list[str]:
    """Classes with differences now and none (or not compared) in the previous run."""
    before: dict[str, Any] = (previous.totals if previous else {}) or {}
    return [
        name
        for name, v in (run.totals or {}).items()
        if v.get("count") and not (before.get(name) or {}).get("count")
    ]


def _alert(tenant: Tenant, run: ReconciliationRun, previous: ReconciliationRun | None) -> None:
    link = reverse("admin:audit_reconciliationrun_change", args=[run.pk])
    for name in new_classes(run, previous):
        v = run.totals[name]
        raise_alert(
            tenant,
            Alert.Kind.RECONCILIATION,
            DIFFERENCES.get(name, name),
            f"{v['count']} difference(s), total {v['amount']}, first found by reconciliation run #{run.pk}",
            link,
        )
    still = {DIFFERENCES.get(n, n) for n, v in (run.totals or {}).items() if v.get("count")}
    compared = {DIFFERENCES.get(n, n) for n in (run.totals or {})}
    # Resolve only what this run compared and found clear (a skipped class proves nothing).
    resolve_alerts(tenant, Alert.Kind.RECONCILIATION, still | ({*DIFFERENCES.values()} - compared))
