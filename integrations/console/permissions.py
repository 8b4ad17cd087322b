"""Who may do what in the console.

What a user may do comes from their tenant memberships (integrations/membership.py): the highest
role grants the model permissions below through MembershipBackend, and each tenant's own role limits
what they do there (integrations/console/tenancy.py scopes every page to the member's tenants).

    view        read the tenant's rows (connections show with secrets write-only), no action
    audit       view + export and verify auditor evidence (`audit.export_evidence`); no action
    operate     the above + replay records, run syncs and dry runs, acknowledge alerts
    administer  the above + edit connections, flows, webhooks and mappings
    superuser   everything, every tenant (adding or deleting a tenant too)

The two groups below predate memberships: they still grant model permissions, never a tenant.

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
EXPORT_EVIDENCE = "audit.export_evidence"
VIEW_APPS = ("integrations", "mappings", "audit")


def _on(user: Any, tenant: Any, role: str) -> bool:
    if tenant is None:
        return True
    from .tenancy import allowed

    return allowed(user, getattr(tenant, "pk", tenant), role)


def can_replay(user: Any, tenant: Any = None) -> bool:
    """May replay at all (tenant None), or on this tenant (a Tenant or its id)."""
    return bool(
        user and user.is_active and user.is_staff and user.has_perm(REPLAY) and _on(user, tenant, "operate")
    )


def can_run_sync(user: Any, tenant: Any = None) -> bool:
    return bool(
        user and user.is_active and user.is_staff and user.has_perm(RUN_SYNC) and _on(user, tenant, "operate")
    )


def can_export_evidence(user: Any, tenant: Any = None) -> bool:
    """May export (and verify) auditor evidence at all (tenant None), or of this tenant: an auditor
    or an administrator of it. A plain viewer reads the same pages but does not take the data set away;
    an operator runs the system and is not its auditor."""
    if not (user and user.is_active and user.is_staff and user.has_perm(EXPORT_EVIDENCE)):
        return False
    if user.is_superuser:
        return True
    from integrations.membership import EVIDENCE_ROLES

    from .tenancy import roles

    held = roles(user)
    if tenant is None:
        return any(r in EVIDENCE_ROLES for r in held.values())
    return held.get(getattr(tenant, "pk", tenant)) in EVIDENCE_ROLES


def can_edit_connections(user: Any) -> bool:
    return bool(
        user
        and user.is_active
        and user.is_staff
        and user.has_perm("integrations.change_acumaticaconnection")
        and user.has_perm("integrations.change_asanaconnection")
    )


OPERATE_PERMS = frozenset({REPLAY, RUN_SYNC, "audit.change_alert"})
# Adding or deleting a whole tenant, and granting memberships, stay a superuser's.
ADMINISTERED_APPS = ("integrations", "mappings")
SUPERUSER_ONLY_MODELS = ("tenant", "tenantmembership")


def role_permissions(role: str) -> frozenset[str]:
    """The model permissions ("app.codename") a membership of `role` grants."""
    from django.apps import apps

    perms = set()
    for app_label in VIEW_APPS:
        for model in apps.get_app_config(app_label).get_models():
            if model._meta.model_name == "tenantmembership":
                continue
            perms.add(f"{app_label}.view_{model._meta.model_name}")
            if role == "administer" and app_label in ADMINISTERED_APPS:
                name = model._meta.model_name
                perms.add(f"{app_label}.change_{name}")
                if name not in SUPERUSER_ONLY_MODELS:
                    perms |= {f"{app_label}.add_{name}", f"{app_label}.delete_{name}"}
    if role in ("operate", "administer"):
        perms |= OPERATE_PERMS
    if role in ("audit", "administer"):
        perms.add(EXPORT_EVIDENCE)
    return frozenset(perms)


class MembershipBackend:
    """An authentication backend that authenticates no one and grants the permissions of a user's
    highest tenant role (settings.AUTHENTICATION_BACKENDS, after ModelBackend)."""

    def authenticate(self, request, **credentials):
        return None

    def get_user(self, user_id):
        return None

    def get_all_permissions(self, user_obj, obj=None) -> frozenset[str]:
        if obj is not None or not user_obj.is_active or user_obj.is_anonymous:
            return frozenset()
        from integrations.membership import EVIDENCE_ROLES, RANK

        from .tenancy import roles

        held = set(roles(user_obj).values())
        if not held:
            return frozenset()
        # The highest rung of the ladder, plus what an off-ladder role (audit) adds.
        perms = set(role_permissions(max(held, key=lambda r: RANK.get(r, 0))))
        for role in held & EVIDENCE_ROLES:
            perms |= role_permissions(role)
        return frozenset(perms)

    def has_perm(self, user_obj, perm, obj=None) -> bool:
        return perm in self.get_all_permissions(user_obj, obj)

    def has_module_perms(self, user_obj, app_label) -> bool:
        return any(p.startswith(f"{app_label}.") for p in self.get_all_permissions(user_obj))


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
