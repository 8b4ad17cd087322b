"""`connector config apply FILE` / `connector config export --tenant SLUG [-o FILE]`."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError

from integrations.config_io import ConfigFileError, apply_file, export_tenant, load_file
from integrations.models import Tenant

NAME = "config"
HELP = "Apply a tenant from a JSON file (all or nothing), or export one as JSON (secrets as env references)."


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    apply_p = sub.add_parser(
        "apply", help="Validate FILE and write the tenant it describes, in one transaction."
    )
    apply_p.add_argument("file", help="Path to the tenant JSON file")
    apply_p.add_argument(
        "--prune", action="store_true", help="Delete the tenant's flows that the file does not name"
    )
    export_p = sub.add_parser("export", help='Print a tenant as JSON; secrets appear as {"env": "VAR"}.')
    export_p.add_argument("--tenant", required=True, help="Tenant slug")
    export_p.add_argument("-o", "--output", help="Write to this file instead of standard output")


def run(options, out) -> int:
    from integrations.membership import Role

    from .actor import require

    if options["config_action"] == "apply":
        try:
            tdoc = load_file(options["file"]).get("tenant")
        except ConfigFileError:
            tdoc = None  # apply_file reports the problems below
        slug = tdoc.get("slug") if isinstance(tdoc, dict) else None
        if isinstance(slug, str):  # an existing tenant: administer it; a new one: superusers only
            require(options, Tenant.objects.filter(slug=slug).first(), Role.ADMINISTER)
        try:
            summary = apply_file(options["file"], prune=options["prune"])
        except ConfigFileError as exc:
            for problem in exc.problems:
                out.error(f"{exc.source}: {problem}")
            out.error(f"Nothing was written ({len(exc.problems)} problem(s)).")
            return 2
        for verb in ("created", "updated", "deleted"):
            for label in summary[verb]:
                out.write(f"{verb}: {label}")
        out.success(
            f"Applied {options['file']}: {len(summary['created'])} created, "
            f"{len(summary['updated'])} updated, {len(summary['deleted'])} deleted."
        )
        return 0
    tenant = Tenant.objects.filter(slug=options["tenant"]).first()
    if tenant is None:
        raise CommandError(f"No tenant with slug {options['tenant']!r}.")
    require(options, tenant, Role.VIEW)
    doc = export_tenant(tenant.slug)
    text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
    if options.get("output"):
        Path(options["output"]).write_text(text, encoding="utf-8")
        out.success(f"Exported tenant {options['tenant']} to {options['output']}.")
    else:
        out.write(text.rstrip("\n"))
    return 0
