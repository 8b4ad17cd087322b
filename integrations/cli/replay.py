"""`connector replay --entry ID | --record ID | --tenant T --status failed [--flow F] [--yes]`.

Prints what a replay would write (the field diff against the target's current state for one record,
the counts for a set), then — with --yes, or after answering "y" — queues it as a replay run
(trigger "replay", triggered_by "cli:<user>"). The mechanism is integrations/flows/replay.py.
"""

from __future__ import annotations

import getpass

from django.core.management.base import CommandError

NAME = "replay"
HELP = "Replay one audit entry, one record, or a tenant's failed records (diff or counts first)."


def add_arguments(parser) -> None:
    parser.add_argument("--entry", type=int, help="AuditEntry id")
    parser.add_argument("--record", type=int, help="RecordLink id")
    parser.add_argument("--tenant", help="Tenant slug (with --status)")
    parser.add_argument("--status", help="RecordLink state to replay, e.g. failed or quarantined")
    parser.add_argument("--flow", help="Flow name (with --tenant)")
    parser.add_argument("--yes", action="store_true", help="Queue without asking")


def _items(options):
    from audit.models import AuditEntry
    from integrations.models import RecordLink

    if options.get("entry"):
        entry = AuditEntry.objects.select_related("record_link__flow").filter(pk=options["entry"]).first()
        if entry is None or entry.record_link is None:
            raise CommandError(f"no audit entry {options['entry']} with a record")
        return [(entry.record_link, entry)]
    if options.get("record"):
        link = RecordLink.objects.select_related("flow", "tenant").filter(pk=options["record"]).first()
        if link is None:
            raise CommandError(f"no record {options['record']}")
        return [(link, None)]
    if options.get("tenant") and options.get("status"):
        qs = RecordLink.objects.select_related("flow", "tenant").filter(
            tenant__slug=options["tenant"], state=options["status"]
        )
        if options.get("flow"):
            qs = qs.filter(flow__name=options["flow"])
        return [(link, None) for link in qs]
    raise CommandError("give --entry ID, --record ID, or --tenant T --status S")


def run(options, out) -> int:
    from integrations.flows import replay
    from integrations.membership import Role

    from .actor import require

    items = _items(options)
    for tenant in {link.tenant for link, _ in items}:
        require(options, tenant, Role.OPERATE)
    if not items:
        out.write("Nothing matches.")
        return 0
    if len(items) == 1:
        link, entry = items[0]
        preview = replay.preview(link, entry)
        out.write(f"{preview.key}: {preview.action} — {preview.summary}")
        for field, (now, new) in preview.diff.items():
            out.write(f"  {field}: {now!r} → {new!r}")
        if not preview.runnable:
            out.error(f"Cannot replay: {preview.reason}")
            return 1
    else:
        handled = sum(1 for link, entry in items if replay.handler_for(link, entry))
        out.write(f"{len(items)} record(s) selected, {handled} replayable.")
    if not options.get("yes"):
        answer = input("Queue the replay? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            out.write("Not queued.")
            return 1
    actor = options.get("cli_actor") or f"cli:{getpass.getuser()}"
    run = replay.enqueue(
        items, actor=actor, message=f"replay from connector replay by {actor} (login {getpass.getuser()})"
    )
    if run is None:
        out.error("Nothing replayable.")
        return 1
    out.success(f"Queued {run.progress_total} replay(s) as run #{run.pk}.")
    return 0
