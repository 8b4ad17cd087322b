"""`connector reconcile [--tenant T]`: run the three-way reconciliation now and print its report (the
same run the daily schedule makes, kept for the console's trend). Exit 1 when differences were found."""

from __future__ import annotations

from django.core.management.base import CommandError

NAME = "reconcile"
HELP = "Compare Acumatica, Asana and Sage 100 for a tenant (or all) and print what fell between them."


def add_arguments(parser) -> None:
    parser.add_argument("--tenant", help="Tenant slug (default: every active tenant)")


def run(options, out) -> int:
    from integrations.flows import reconciliation
    from integrations.membership import Role
    from integrations.models import Tenant

    from .actor import require

    tenants = Tenant.objects.filter(active=True).order_by("slug")
    if options.get("tenant"):
        tenants = Tenant.objects.filter(slug=options["tenant"])
        if not tenants.exists():
            raise CommandError(f"no tenant {options['tenant']!r}")
    found = 0
    for tenant in tenants:
        require(options, tenant, Role.OPERATE)
        run = reconciliation.reconcile(tenant, actor=options.get("cli_actor") or "cli:system")
        out.write(f"{tenant.slug}: run #{run.pk} {run.status}")
        for name, label in reconciliation.DIFFERENCES.items():
            totals = (run.totals or {}).get(name)
            if totals is None:
                why = next((s["why"] for s in run.skipped if s["difference"] == name), "not compared")
                out.write(f"  {label:<50} —  ({why})")
            else:
                out.write(f"  {label:<50} {totals['count']:>5}  {totals['amount']:>14}")
        for d in run.differences.all():
            out.write(f"    {d.difference}: {d.key} {d.amount} — {d.detail}")
        found += run.difference_count
    return 1 if found else 0
