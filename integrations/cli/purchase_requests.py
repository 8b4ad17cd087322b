"""`connector purchase-requests --tenant T [--dry-run] [--task GID] [--status]`: run the Sage 100 flows now.

Without `--task`: one catch-up pass of every purchase-request flow of the tenant (approved tasks
modified since the cursor, plus requests left waiting on the agent). `--dry-run` validates and prints
what would be created, writing nothing anywhere (no PO, no link, no comment, no cursor). `--status`
also runs the PO status poll with a full reconciliation of open POs. `--sync-users` only reads the Asana
workspace roster into the user mappings (e-mail ↔ Asana user, name, active; `sage_user` is kept) and exits:
the flow also does this by itself when a requester or approver is not mapped yet.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from integrations.base import errors
from integrations.flows import clients as flow_clients
from integrations.models import Flow

NAME = "purchase-requests"
HELP = "Turn approved Asana purchase requests into Sage 100 POs now (or --dry-run to only validate)."


def add_arguments(parser) -> None:
    parser.add_argument("--tenant", required=True, help="Tenant slug")
    parser.add_argument("--task", help="Only this Asana task GID")
    parser.add_argument("--dry-run", action="store_true", help="Validate and print; write nothing")
    parser.add_argument("--status", action="store_true", help="Also poll PO status and reconcile open POs")
    parser.add_argument("--schedules", action="store_true", help="Create/refresh the Sage 100 poll schedule")
    parser.add_argument(
        "--sync-users", action="store_true", help="Only read the Asana roster into the user mappings"
    )


def run(options, out) -> int:
    from integrations.flows.purchase_requests import tasks
    from integrations.flows.purchase_requests.orders import process_purchase_request

    if options.get("schedules"):
        for line in tasks.ensure_schedules():
            out.write(line)
    flows = Flow.objects.select_related("tenant").filter(
        tenant__slug=options["tenant"], enabled=True, kind=Flow.Kind.ASANA_PURCHASE_REQUESTS
    )
    if not flows.exists():
        raise CommandError(f"tenant {options['tenant']!r} has no enabled purchase-request flow")
    from integrations.membership import Role

    from .actor import require

    require(options, flows.first().tenant, Role.OPERATE)
    if options.get("sync_users"):
        return _sync_users(flows.first().tenant, out)
    failures = 0
    for flow in flows:
        clients = flow_clients.clients_for(flow.tenant)
        try:
            if options.get("task"):
                asana, sage = clients.asana, clients.sage
                result = process_purchase_request(
                    flow, options["task"], asana=asana, sage=sage, dry_run=options["dry_run"]
                )
            else:
                result = tasks.poll_purchase_requests(flow.pk, dry_run=options["dry_run"], clients=clients)
        except errors.ConnectorError as exc:
            failures += 1
            out.error(f"{flow.name}: {exc}")
            continue
        out.write(f"{flow.name}: {result}")
    if options.get("status") and not options["dry_run"]:
        for flow in Flow.objects.filter(
            tenant__slug=options["tenant"], enabled=True, kind=Flow.Kind.SAGE100_PO_STATUS
        ):
            out.write(f"{flow.name}: {tasks.poll_po_status(flow.pk, reconcile=True)}")
    if failures:
        return 1
    out.success("Done.")
    return 0


def _sync_users(tenant, out) -> int:
    from mappings.users import sync_asana_users

    asana = flow_clients.clients_for(tenant).asana
    try:
        result = sync_asana_users(tenant, asana)
    except errors.ConnectorError as exc:
        out.error(f"Asana roster not read, nothing changed: {exc}")
        return 1
    for who, why in result.skipped:
        out.write(f"  skip {who}: {why}")
    out.success(f"User mappings: {result.summary()}.")
    return 0
