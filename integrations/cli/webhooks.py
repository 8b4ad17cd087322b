"""`connector webhooks ensure|check --tenant T`: register Asana webhooks, or run the watchdog now.

Registration must run outside the web workers: Asana's handshake arrives at our URL while the create
call is still open (reference/asana.md §6.2), so this command (or a queued task) does it while the web
process serves the handshake.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from integrations.flows import clients as flow_clients
from integrations.models import Tenant

NAME = "webhooks"
HELP = "Asana webhooks: 'ensure' registers missing ones (and the schedules), 'check' runs the watchdog."


def add_arguments(parser) -> None:
    parser.add_argument("action", choices=("ensure", "check"), help="ensure | check")
    parser.add_argument(
        "--tenant", help="Tenant slug (default: every active tenant with an Asana connection)"
    )


def _tenants(slug: str | None) -> list[Tenant]:
    qs = Tenant.objects.filter(active=True, asana__isnull=False)
    if slug:
        qs = Tenant.objects.filter(slug=slug)
        if not qs.exists():
            raise CommandError(f"no tenant {slug!r}")
        if not hasattr(qs.first(), "asana"):
            raise CommandError(f"tenant {slug!r} has no Asana connection")
    return list(qs)


def run(options, out) -> int:
    from integrations.flows.inbound import watchdog
    from integrations.flows.inbound.tasks import ensure_schedules
    from integrations.membership import Role

    from .actor import require

    failures = 0
    tenants = _tenants(options.get("tenant"))
    for tenant in tenants:
        require(options, tenant, Role.ADMINISTER)
    for tenant in tenants:
        clients = flow_clients.clients_for(tenant)
        if options["action"] == "ensure":
            results = watchdog.ensure_webhooks(tenant, clients.asana)
            if not results:
                out.write(f"{tenant.slug}: no enabled flow consumes Asana task events")
            for r in results:
                line = f"{tenant.slug}: project {r.hook.resource_gid} → {r.action} {r.detail}".rstrip()
                (out.success if r.ok else out.error)(line)
                failures += not r.ok
        else:
            report = watchdog.check_tenant(tenant, clients=clients)
            (out.success if report.ok and not report.failing else out.error)(
                f"{tenant.slug}: {report.summary()}"
            )
            failures += not report.ok
    if options["action"] == "ensure":
        for line in ensure_schedules():
            out.write(f"schedule {line}")
    return 1 if failures else 0
