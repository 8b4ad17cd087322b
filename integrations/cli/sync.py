"""`connector sync --tenant T --flow F [--dry-run] [--since ISO] [--schedules]`: run a pass now.

`--dry-run` prints the plan — creates, updates with their field diffs, skips, quarantines — and
writes nothing anywhere: no task, no record link, no audit row, no cursor, no API-call row.
`--schedules` creates or refreshes the django-q2 schedules of every documents flow instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import CommandError

from integrations.models import Flow

NAME = "sync"
HELP = "Run one pass of a flow now (bills / purchase orders → Asana), or print its plan with --dry-run."


def add_arguments(parser) -> None:
    parser.add_argument("--tenant", help="Tenant slug")
    parser.add_argument("--flow", help="Flow name (or id)")
    parser.add_argument("--dry-run", action="store_true", help="Print the plan; write nothing anywhere")
    parser.add_argument("--since", help="ISO date-time (UTC if no offset): documents modified after it")
    parser.add_argument("--schedules", action="store_true", help="Create/refresh the polling schedules")


def _flow(options) -> Flow:
    if not options.get("tenant") or not options.get("flow"):
        raise CommandError("--tenant and --flow are required")
    flows = Flow.objects.select_related("tenant").filter(tenant__slug=options["tenant"])
    if not flows.exists():
        raise CommandError(f"no flows for tenant {options['tenant']!r}")
    name = options["flow"]
    flow = flows.filter(name=name).first() or (flows.filter(pk=name).first() if name.isdigit() else None)
    if flow is None:
        raise CommandError(f"no flow {name!r}; flows: {', '.join(flows.values_list('name', flat=True))}")
    if flow.kind not in (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS):
        raise CommandError(f"flow {flow.name!r} is a {flow.kind} flow; sync runs bills and purchase orders")
    return flow


def _since(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"--since {text!r} is not an ISO date-time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run(options, out) -> int:
    from integrations.base import errors
    from integrations.flows.documents.poll import poll
    from integrations.flows.documents.sync import DocumentSync
    from integrations.flows.documents.tasks import ensure_schedules, schedule_document

    if options.get("schedules"):
        for line in ensure_schedules():
            out.write(line)
        out.success("Schedules are in place.")
        return 0
    from integrations.membership import Role

    from .actor import require

    flow = _flow(options)
    require(options, flow.tenant, Role.OPERATE)
    actor = options.get("cli_actor") or "cli"
    dry = bool(options.get("dry_run"))
    since = _since(options.get("since"))
    sync = DocumentSync(flow, dry_run=dry, actor=actor)

    def progress(result) -> None:
        c = result.counts
        out.write(
            f"  page {result.pages}: {sum(c.values())} document(s) — "
            + ", ".join(f"{k} {v}" for k, v in c.items() if v)
        )

    out.write(f"{'Planning' if dry else 'Syncing'} {flow} since {since or 'the watermark'}…")
    try:
        result = poll(
            sync,
            since=since,
            trigger="dry_run" if dry else "manual",
            triggered_by=actor,
            progress=progress,
            retry_record=None if dry else (lambda t, n, d: schedule_document(flow.pk, t, n, d)),
        )
    except errors.RetryableError as exc:
        out.error(f"The pass stopped and can be run again: {exc}")
        return 1
    except errors.ConnectorError as exc:
        out.error(f"The pass failed: {exc}")
        return 1
    if dry:
        out.write("Plan (nothing was written):")
        for plan in result.plans:
            out.write("  " + plan.describe())
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    if not dry:
        out.write(f"Run #{result.run.pk}: {result.run.status}; watermark now {result.watermark}")
    failed = result.counts["failed"]
    (out.error if failed else out.success)(f"{'Planned' if dry else 'Done'}: {counts}.")
    return 1 if failed else 0
