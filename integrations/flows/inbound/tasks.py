"""django-q2 entry points of the inbound side: the approval catch-up poll and the webhook watchdog.

poll_approvals()        task changes Asana never delivered, stored and dispatched like events
check_webhooks()        hourly: failing or deleted webhooks re-registered, gaps backfilled
register_webhooks(id)   the console's "Register webhooks" action, in a worker
ensure_schedules()      the schedules above and the stuck-event sweep (events.py), idempotently
"""

from __future__ import annotations

import logging

from integrations.base import errors, schedules
from integrations.flows import clients as flow_clients
from integrations.flows.inbound.watchdog import backfill_flow, check_tenant, ensure_webhooks
from integrations.models import Flow, Tenant

log = logging.getLogger(__name__)


def poll_approvals(tenant_id: int | None = None) -> str:
    """Catch-up: task changes Asana may never deliver (at-most-once, §6.5), processed like events."""

    done = []
    tenants = Tenant.objects.filter(active=True, **({"pk": tenant_id} if tenant_id else {}))
    for tenant in tenants:
        flows = list(tenant.flows.filter(enabled=True, kind=Flow.Kind.ASANA_APPROVALS))
        if not flows or not hasattr(tenant, "asana"):
            continue
        clients = flow_clients.clients_for(tenant)
        for flow in flows:
            try:
                done.append(f"{flow}: {backfill_flow(flow, clients=clients)}")
            except errors.ConnectorError as exc:
                # The cursor did not move: the next pass covers this window. Other flows and tenants
                # are polled regardless (one tenant's 429 or outage must not stop everyone's catch-up).
                log.warning("approval catch-up poll of %s stopped: %s", flow, exc)
                done.append(f"{flow}: not polled, the next pass retries ({exc})")
    return "; ".join(done) or "no approval flows"


def check_webhooks(tenant_id: int | None = None) -> str:
    """The hourly watchdog: failing/deleted webhooks re-registered, gaps backfilled."""

    out = []
    for tenant in Tenant.objects.filter(active=True, **({"pk": tenant_id} if tenant_id else {})):
        if not hasattr(tenant, "asana"):
            continue
        try:
            report = check_tenant(tenant, clients=flow_clients.clients_for(tenant))
        except errors.ConnectorError as exc:
            # A gap backfill that failed is covered by the catch-up poll (its cursor did not move).
            log.warning("webhook watchdog for %s stopped: %s", tenant.slug, exc)
            out.append(f"{tenant.slug}: stopped, the next run and the catch-up poll retry ({exc})")
            continue
        out.append(f"{tenant.slug}: {report.summary()}")
    return "; ".join(out) or "no tenants"


def ensure_schedules() -> list[str]:
    """Idempotent: the watchdog hourly, the approval catch-up poll every 15 minutes."""
    here = "integrations.flows.inbound.tasks"
    return [
        schedules.ensure("asana-webhook-watchdog", f"{here}.check_webhooks", hourly=True),
        schedules.ensure("approval-catch-up-poll", f"{here}.poll_approvals", minutes=15),
    ]


def register_webhooks(tenant_id: int) -> str:
    """The console's "Register webhooks" action runs this in a worker (never in the web request: §6.2)."""

    tenant = Tenant.objects.get(pk=tenant_id)
    results = ensure_webhooks(tenant, flow_clients.clients_for(tenant).asana)
    return (
        "; ".join(f"{r.hook.resource_gid}: {r.action} {r.detail}".strip() for r in results) or "nothing to do"
    )


def run_approvals_once(flow: Flow, actor: str) -> tuple[bool, str]:
    """The approvals flow is event-driven: by hand, its catch-up poll runs now."""
    answer = poll_approvals(flow.tenant_id)
    return "not polled" not in answer, answer
