"""`connector check [--tenant SLUG]`: verify each connection and say what was verified and how.

Each system registers a checker in CHECKERS: a callable (connection) -> list[CheckResult]. The
system packages fill this in (Acumatica, Asana, Sage 100); without a checker the connection is only
validated as configured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils import timezone

from integrations.models import AcumaticaConnection, AsanaConnection, Sage100Connection, Tenant

NAME = "check"
HELP = (
    "Check every connection of a tenant (or all tenants): configuration, reachability, credentials, access."
)


@dataclass
class CheckResult:
    ok: bool
    what: str
    detail: str = ""


# system name -> callable(connection) -> list[CheckResult]; registered by the system packages.
CHECKERS: dict[str, Callable[[object], list[CheckResult]]] = {}
SYSTEMS = (("acumatica", AcumaticaConnection), ("asana", AsanaConnection), ("sage100", Sage100Connection))


def add_arguments(parser) -> None:
    parser.add_argument("--tenant", help="Tenant slug (default: every active tenant)")


def check_connection(system: str, conn) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        conn.full_clean()
        results.append(CheckResult(True, "configuration", "all fields valid"))
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            results.append(CheckResult(False, f"configuration: {field}", "; ".join(messages)))
        return results
    checker = CHECKERS.get(system)
    if checker is None:
        _load_checkers()
        checker = CHECKERS.get(system)
    if checker is not None:
        results.extend(checker(conn))
    return results


def _load_checkers() -> None:
    import importlib

    for system, _model in SYSTEMS:
        try:
            importlib.import_module(f"integrations.{system}.check")
        except ModuleNotFoundError:
            continue


def check_tenant(tenant: Tenant) -> dict[str, list[CheckResult]]:
    """Check every connection of a tenant and store each verdict on its connection (shown in the console)."""
    verdicts: dict[str, list[CheckResult]] = {}
    for system, model in SYSTEMS:
        conn = model.objects.filter(tenant=tenant).first()
        if conn is None:
            continue
        results = check_connection(system, conn)
        verdicts[system] = results
        model.objects.filter(pk=conn.pk).update(
            last_checked_at=timezone.now(),
            last_check_ok=all(r.ok for r in results),
            last_check_message="\n".join(f"{'ok' if r.ok else 'FAIL'} {r.what}: {r.detail}" for r in results),
        )
    return verdicts


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
