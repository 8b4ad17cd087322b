"""Who a `connector` command acts as: `connector --as USER …` runs with that console user's tenant
roles (integrations/membership.py), without it the command runs as the system actor, which may do
everything and is recorded by name in the audit trail (AuditEntry.actor, the replay's run message).

    options["cli_user"]    the User, or None for the system actor
    options["cli_actor"]   what the audit trail records: the username, or SYSTEM_ACTOR
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

SYSTEM_ACTOR = "cli:system"


def resolve(options: dict[str, Any]) -> None:
    """Fill cli_user / cli_actor from `--as`; an unknown or inactive user is refused."""
    name = options.get("as_user")
    if not name:
        options["cli_user"], options["cli_actor"] = None, SYSTEM_ACTOR
        return
    user = get_user_model().objects.filter(username=name).first()
    if user is None or not user.is_active:
        raise CommandError(f"--as {name!r}: no active user of that name")
    options["cli_user"], options["cli_actor"] = user, user.get_username()


def require(options: dict[str, Any], tenant: Any, role: str) -> None:
    """Refuse (CommandError, nothing done) unless the command's user holds `role` on `tenant`."""
    from integrations.console.tenancy import allowed

    user = options.get("cli_user")
    if user is None:
        return
    if tenant is None or getattr(tenant, "pk", None) is None:
        if not user.is_superuser:
            raise CommandError(f"{user.get_username()} may not create a tenant: a superuser does")
        return
    if not allowed(user, tenant.pk, role):
        raise CommandError(f"{user.get_username()} may not {role} tenant {tenant.slug!r}")


def scoped(options: dict[str, Any], queryset, role: str):
    """`queryset` narrowed to the tenants the command's user holds `role` on (all for the system actor)."""
    from integrations.console.tenancy import scope

    user = options.get("cli_user")
    return queryset if user is None else scope(queryset, user, role)
