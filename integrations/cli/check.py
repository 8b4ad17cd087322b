"""`connector check [--tenant SLUG]`: verify each connection and say what was verified and how
(integrations/flows/checks.py runs each system's check from the registry)."""

from __future__ import annotations

from integrations.flows.checks import check_tenant
from integrations.models import Tenant

NAME = "check"
HELP = (
    "Check every connection of a tenant (or all tenants): configuration, reachability, credentials, access."
)


def add_arguments(parser) -> None:
    parser.add_argument("--tenant", help="Tenant slug (default: every active tenant)")


def run(options, out) -> int:
    from integrations.membership import Role

    from .actor import scoped

    tenants = scoped(options, Tenant.objects.filter(active=True), Role.OPERATE)
    if options.get("tenant"):
        tenants = scoped(options, Tenant.objects.filter(slug=options["tenant"]), Role.OPERATE)
        if not tenants.exists():
            out.error(f"No tenant with slug {options['tenant']!r}.")
            return 2
    failures = 0
    for tenant in tenants:
        out.write(f"Tenant {tenant.slug} ({tenant.name})")
        any_conn = False
        for system, results in check_tenant(tenant).items():
            any_conn = True
            ok = all(r.ok for r in results)
            failures += sum(1 for r in results if not r.ok)
            out.write(f"  {system}: {'OK' if ok else 'FAILED'}")
            for r in results:
                line = f"    [{'ok' if r.ok else 'FAIL'}] {r.what}" + (f": {r.detail}" if r.detail else "")
                (out.write if r.ok else out.error)(line)
        if not any_conn:
            out.warning("  no connections configured")
    if failures:
        out.error(f"{failures} check(s) failed.")
        return 1
    out.success("All checks passed.")
    return 0
