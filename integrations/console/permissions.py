"""Who may do what in the console.

    Operators (view)            read everything (connections show with secrets write-only), no action
    Operators (replay & sync)   the above + replay records, run syncs and dry runs, acknowledge alerts
    admins                      superusers, or staff with change permission on connections: edit
                                tenants, connections, flows and mappings

The two custom permissions live on audit.Alert (Meta.permissions): `audit.replay_records` and
`audit.run_sync`. `ensure_groups()` is idempotent; migration audit/0003 runs it and `connector demo`
may run it again after new models appear.
"""

from __future__ import annotations

from typing import Any

VIEW_GROUP = "Operators (view)"
OPERATOR_GROUP = "Operators (replay & sync)"
REPLAY = "audit.replay_records"
RUN_SYNC = "audit.run_sync"
VIEW_APPS = ("integrations", "mappings", "audit")


def can_replay(user: Any) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(REPLAY))


def can_run_sync(user: Any) -> bool:
    return bool(user and user.is_active and user.is_staff and user.has_perm(RUN_SYNC))


def can_edit_connections(user: Any) -> bool:
    return bool(
        user
        and user.is_active
        and user.is_staff
        and user.has_perm("integrations.change_acumaticaconnection")
        and user.has_perm("integrations.change_asanaconnection")
    )


def ensure_groups(apps: Any = None) -> dict[str, int]:
    """Create or refresh both groups; returns {group: number of permissions}. Works in a migration
    (pass its `apps`) and at run time."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view = list(
        Permission.objects.filter(content_type__app_label__in=VIEW_APPS, codename__startswith="view_")
    )
    extra = list(
        Permission.objects.filter(
            content_type__app_label="audit", codename__in=("replay_records", "run_sync", "change_alert")
        )
    )
    out = {}
    for name, perms in ((VIEW_GROUP, view), (OPERATOR_GROUP, view + extra)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)
        out[name] = len(perms)
    return out
