"""`connector evidence --tenant T --from D --to D [--flow ID] --format csv|pdf --out FILE` and
`connector evidence verify FILE`.

The export is recorded (EvidenceExport + an `evidence.export` audit entry, actor = `--as` user or the
system actor) with the SHA-256 of its content; a `FILE.sha256` line (sha256sum format) is written next
to it. `verify` recomputes a file's SHA-256 and names the recorded export it matches (exit 0), or says
it matches none (exit 1): the file was altered, or is not ours. With `--as USER`, exporting needs the
auditor or administer role on the tenant.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from django.core.management.base import CommandError

NAME = "evidence"
HELP = "Export auditor evidence (CSV or PDF) for a tenant and period, or verify an exported file."


def add_arguments(parser) -> None:
    parser.add_argument("action", nargs="?", choices=("export", "verify"), default="export")
    parser.add_argument("file", nargs="?", help="verify: the exported file")
    parser.add_argument("--tenant", help="Tenant slug")
    parser.add_argument("--from", dest="period_start", help="First day, YYYY-MM-DD")
    parser.add_argument("--to", dest="period_end", help="Last day (inclusive), YYYY-MM-DD")
    parser.add_argument("--flow", type=int, help="Only this flow (id)")
    parser.add_argument("--format", choices=("csv", "pdf"), default="csv")
    parser.add_argument("--out", help="Where to write the export")


def _day(value: str | None, name: str) -> date:
    if not value:
        raise CommandError(f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from exc


def _require_evidence(options, tenant) -> None:
    from integrations.console.permissions import EXPORT_EVIDENCE
    from integrations.membership import EVIDENCE_ROLES

    user = options.get("cli_user")
    if user is None or user.is_superuser:
        return
    from integrations.console.tenancy import roles

    if roles(user).get(tenant.pk) not in EVIDENCE_ROLES or not user.has_perm(EXPORT_EVIDENCE):
        raise CommandError(f"{user.get_username()} may not export evidence of tenant {tenant.slug!r}")


def run(options, out) -> int:
    from integrations.flows import evidence
    from integrations.models import Flow, Tenant

    actor = options.get("cli_actor") or "cli:system"
    if options["action"] == "verify":
        if not options.get("file"):
            raise CommandError("verify needs the file: connector evidence verify FILE")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no file {path}")
        content = path.read_bytes()
        record = evidence.verify(content, actor=actor)
        digest = evidence.sha256_hex(content)
        if record is None:
            out.error(f"NOT VERIFIED: {path} (SHA-256 {digest}) matches no recorded export")
            return 1
        out.success(
            f"VERIFIED: {path} is export #{record.pk} ({record}), {record.documents} document(s), "
            f"made by {record.created_by} on {record.created_at:%Y-%m-%d %H:%M} — SHA-256 {digest}"
        )
        return 0
    tenant = Tenant.objects.filter(slug=options.get("tenant") or "").first()
    if tenant is None:
        raise CommandError(f"no tenant {options.get('tenant')!r} (--tenant SLUG)")
    _require_evidence(options, tenant)
    start, end = _day(options.get("period_start"), "--from"), _day(options.get("period_end"), "--to")
    flow = None
    if options.get("flow"):
        flow = Flow.objects.filter(pk=options["flow"], tenant=tenant).first()
        if flow is None:
            raise CommandError(f"no flow {options['flow']} of tenant {tenant.slug}")
    if not options.get("out"):
        raise CommandError("--out FILE is required")
    try:
        result = evidence.produce(tenant, start, end, fmt=options["format"], actor=actor, flow=flow)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    target = Path(options["out"])
    target.write_bytes(result.content)
    target.with_name(target.name + ".sha256").write_text(f"{result.sha256}  {target.name}\n")
    out.success(
        f"{len(result.rows)} document(s), {result.record.exceptions} exception(s) → {target} "
        f"({result.record.size_bytes} bytes); export #{result.record.pk}, SHA-256 {result.sha256}"
    )
    return 0
