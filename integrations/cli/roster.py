"""`connector roster --tenant T [--apply]`: Acumatica employees vs the Asana workspace; dry run by default."""

from __future__ import annotations

from django.core.management.base import CommandError

from integrations.flows import clients as flow_clients
from integrations.models import Flow, Tenant

NAME = "roster"
HELP = "Compare Acumatica employees with Asana workspace users and show the diff; --apply makes the changes."


def add_arguments(parser) -> None:
    parser.add_argument("--tenant", required=True, help="Tenant slug")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="Add missing active employees (and remove inactive ones if the flow allows it)",
    )


def run(options, out) -> int:
    from integrations.flows.roster.sync import sync_roster

    tenant = Tenant.objects.filter(slug=options["tenant"]).first()
    if tenant is None:
        raise CommandError(f"no tenant {options['tenant']!r}")
    flows = list(tenant.flows.filter(kind=Flow.Kind.ACUMATICA_EMPLOYEES, enabled=True))
    if not flows:
        raise CommandError(f"tenant {tenant.slug!r} has no enabled employee roster flow")
    code = 0
    for flow in flows:
        result = sync_roster(
            flow, clients=flow_clients.clients_for(tenant), apply=options["apply"], actor="command"
        )
        if result.plan is None:
            out.error(f"{flow}: {result.error} — nothing changed")
            code = 1
            continue
        out.write(f"{flow}: {'APPLY' if options['apply'] else 'DRY RUN (nothing changed; --apply to act)'}")
        for line in result.plan.lines() or ["  (no differences)"]:
            out.write("  " + line)
        for line in result.done:
            out.success("  " + line)
        if result.run.status != "succeeded":
            out.error(f"  run #{result.run.pk} {result.run.status}")
            code = 1
    return code
