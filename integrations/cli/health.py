"""`connector health [--sweep]`: the cluster's health as /healthz sees it (queue, workers, runs past
their deadline, inbound events, webhooks); `--sweep` first marks runs past the deadline abandoned.

Runs without the cluster, so it works while the workers are wedged. Exit 1 when anything is red.
"""

from __future__ import annotations

NAME = "health"
HELP = (
    "Show queue, worker, run, inbound and webhook health; --sweep marks runs past their deadline abandoned."
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--sweep", action="store_true", help="Mark runs 'running' past the deadline abandoned"
    )


def run(options, out) -> int:
    from integrations.console.dashboard import RED
    from integrations.flows.operations.health import sweep_abandoned_runs, system_health
    from integrations.membership import Role
    from integrations.models import Tenant

    from .actor import scoped

    if options.get("sweep"):
        if options.get("cli_user") is not None and not options["cli_user"].is_superuser:
            from django.core.management.base import CommandError

            raise CommandError("--sweep is the system's (or a superuser's): it acts on every tenant")
        out.write(f"Marked {sweep_abandoned_runs()} run(s) abandoned.")
    tenants = scoped(options, Tenant.objects.all(), Role.VIEW) if options.get("cli_user") else None
    items = system_health(tenants=tenants)
    for key, h in items.items():
        line = f"{key:9s} {h.level:5s} {h.value:>8s}  {h.reason}"
        (out.error if h.level == RED else out.write)(line)
    if any(h.level == RED for h in items.values()):
        return 1
    out.success("Healthy.")
    return 0
