"""`connector links`: records waiting for a person (create outcome unknown), and the decision on one."""

from __future__ import annotations

from django.core.management.base import CommandError

from integrations.models import RecordLink, Tenant

NAME = "links"
HELP = "List records whose create outcome is unknown (waiting for a person) and adopt a task or create anew."


def add_arguments(parser) -> None:
    parser.add_argument(
        "action", choices=("waiting", "resolve"), help="list the waiting links, or resolve one"
    )
    parser.add_argument("--tenant", help="Tenant slug (waiting: only this tenant)")
    parser.add_argument("--link", type=int, help="RecordLink id (resolve)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--adopt", default="", metavar="TASK_GID", help="adopt this candidate task")
    choice.add_argument("--create", action="store_true", help="create a new task on the next sync")
    parser.add_argument("--as", dest="actor", default="command", help="who decides (recorded in the audit)")


def run(options, out) -> int:
    from integrations.flows.documents import parked
    from integrations.membership import Role

    from .actor import require, scoped

    if options["action"] == "waiting":
        qs = scoped(options, RecordLink.objects, Role.VIEW)
        qs = qs.filter(state=RecordLink.State.NEEDS_PERSON).select_related("tenant")
        if options.get("tenant"):
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant {options['tenant']!r}")
            qs = qs.filter(tenant=tenant)
        rows = list(qs.order_by("pk"))
        for link in rows:
            listed = ", ".join(
                f"{c.get('gid')} ({c.get('name') or 'no name'})"
                for c in (link.review or {}).get("candidates", [])
            )
            out.write(f"#{link.pk} {link.tenant.slug} {link}: candidates {listed or '(none)'}")
        out.write(f"{len(rows)} link(s) waiting for a person")
        return 0
    if not options.get("link"):
        raise CommandError("resolve needs --link ID and --adopt TASK_GID or --create")
    link = RecordLink.objects.select_related("tenant").filter(pk=options["link"]).first()
    if link is not None:
        require(options, link.tenant, Role.OPERATE)
    actor = options["actor"]
    if options.get("cli_user") is not None and actor == "command":
        actor = options["cli_actor"]
    try:
        out.success(
            parked.resolve(options["link"], adopt_gid=options["adopt"], create=options["create"], actor=actor)
        )
    except (parked.CannotResolve, RecordLink.DoesNotExist) as exc:
        out.error(str(exc))
        return 1
    return 0
