"""`connector demo`: the admin user and the demo tenant wired to the sandboxes (used by `make run`)."""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model

from integrations.config_io import ConfigFileError, apply_document

NAME = "demo"
HELP = "Create the console's admin user (once) and apply the demo tenant wired to the loopback sandboxes."


def add_arguments(parser) -> None:
    parser.add_argument("--port", type=int, default=8000, help="Port the console will listen on")
    parser.add_argument("--no-tenant", action="store_true", help="Only create the admin user")


def ensure_admin(out) -> None:
    User = get_user_model()
    username = os.environ.get("ADMIN_USERNAME") or "admin"
    if User.objects.filter(username=username).exists():
        out.write(f"Admin user {username!r} exists (password unchanged).")
        return
    password = os.environ.get("ADMIN_PASSWORD")
    generated = not password
    password = password or secrets.token_urlsafe(12)
    User.objects.create_superuser(username, f"{username}@localhost", password)
    if generated:
        out.success(f"Created admin user {username!r} with password: {password}")
        out.write("  (shown once; set ADMIN_PASSWORD to choose it, or change it in the console)")
    else:
        out.success(f"Created admin user {username!r} with the password from ADMIN_PASSWORD.")


def run(options, out) -> int:
    from sandbox import demo  # the demo tenant points at the sandboxes; imported only when it is applied

    ensure_admin(out)
    if options["no_tenant"]:
        return 0
    try:
        summary = apply_document(demo.tenant_document(), source="demo tenant")
    except ConfigFileError as exc:
        for problem in exc.problems:
            out.error(problem)
        return 2
    out.success(
        f"Demo tenant {demo.TENANT_SLUG!r}: {len(summary['created'])} created, "
        f"{len(summary['updated'])} updated."
    )
    from integrations.flows.registry import ensure_all

    for line in ensure_all():  # every recurring job, so the demo flows on its own under `make run`
        out.write(line)
    return 0
