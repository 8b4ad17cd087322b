"""Tenant isolation for the console, in one place.

A user sees the tenants they are members of (integrations/membership.py), superusers see all. Two
entry points scope everything the console shows or does:

    TenantScopedAdmin   the mixin on every ModelAdmin (integrations.console.tenancy.ScopedModelAdmin is
                        the base class): querysets, change pages, list filters, foreign-key choices,
                        autocomplete (it reads the remote admin's queryset), actions and saves.
    get_scoped_or_404   the helper for custom views (lineage, replay, dry run, progress, field
                        discovery): another tenant's object answers 404, a tenant of the user whose role
                        is too low answers 403.

How a model reaches its tenant is derived from its fields (`tenant`, or a foreign key whose model has
one: FieldMapping → flow → tenant, GuardedWrite → link → tenant). A row whose tenant is empty (an
inbound event no tenant claimed, a login call) is a superuser's. Models that cannot reach a tenant
(django-q2's tasks, users and groups) are registered with `SuperuserOnlyAdmin`: operators never see
them. tests/security/test_tenant_isolation.py fails on an admin that is neither.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import RelatedFieldListFilter, RelatedOnlyFieldListFilter
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.http import Http404

from integrations.membership import Role, TenantMembership, at_least

_PATH_CACHE: dict[type, str | None] = {}


# ---- who may see which tenant ---------------------------------------------------------------------


def roles(user: Any) -> dict[int, str]:
    """{tenant id: role} of a non-superuser, read once per user object (one per request)."""
    if not (user and user.is_authenticated and user.is_active):
        return {}
    cached = getattr(user, "_tenant_roles", None)
    if cached is None:
        cached = dict(TenantMembership.objects.filter(user_id=user.pk).values_list("tenant_id", "role"))
        user._tenant_roles = cached
    return cached


def tenant_ids(user: Any, role: str = Role.VIEW) -> set[int] | None:
    """The tenants `user` holds at least `role` on; None means every tenant (a superuser)."""
    if user and user.is_active and user.is_superuser:
        return None
    return {t for t, r in roles(user).items() if at_least(r, role)}


def role_on(user: Any, tenant_id: int | None) -> str | None:
    if user and user.is_active and user.is_superuser:
        return Role.ADMINISTER
    if tenant_id is None:
        return None
    return roles(user).get(tenant_id)


def allowed(user: Any, tenant_id: int | None, role: str = Role.VIEW) -> bool:
    return at_least(role_on(user, tenant_id), role)


# ---- how a model reaches its tenant ---------------------------------------------------------------


def tenant_path(model: type[models.Model], _depth: int = 0) -> str | None:
    """The lookup from `model` to its tenant's id ("pk" for Tenant itself), or None if it has none."""
    if model in _PATH_CACHE and _depth == 0:
        return _PATH_CACHE[model]
    from integrations.models import Tenant

    path: str | None = None
    if model is Tenant:
        path = "pk"
    else:
        try:
            field = model._meta.get_field("tenant")
            if field.is_relation and field.related_model is Tenant:
                path = "tenant"
        except FieldDoesNotExist:
            pass
        if path is None and _depth < 2:
            for field in model._meta.fields:
                if field.is_relation and field.related_model not in (None, model):
                    sub = tenant_path(field.related_model, _depth + 1)
                    if sub:
                        path = field.name if sub == "pk" else f"{field.name}__{sub}"
                        break
    if _depth == 0:
        _PATH_CACHE[model] = path
    return path


def tenant_id_of(obj: models.Model) -> int | None:
    path = tenant_path(type(obj))
    if path is None:
        return None
    if path == "pk":
        return obj.pk
    value: Any = obj
    parts = path.split("__")
    for part in parts[:-1]:
        value = getattr(value, part, None)
        if value is None:
            return None
    return getattr(value, f"{parts[-1]}_id", None)


def scope(queryset: models.QuerySet, user: Any, role: str = Role.VIEW) -> models.QuerySet:
    """`queryset` narrowed to the tenants `user` holds `role` on (a superuser's is unchanged)."""
    ids = tenant_ids(user, role)
    if ids is None:
        return queryset
    path = tenant_path(queryset.model)
    if path is None:
        return queryset.none()
    return queryset.filter(**{f"{path}__in": ids})


def get_scoped_or_404(user: Any, queryset: models.QuerySet, role: str = Role.VIEW, **lookup: Any):
    """The custom views' helper: the object if `user` sees its tenant (else 404, whether it exists or
    not) and holds `role` on it (else 403)."""
    obj = scope(queryset, user, Role.VIEW).filter(**lookup).first()
    if obj is None:
        raise Http404("No such object.")
    if not allowed(user, tenant_id_of(obj), role):
        raise PermissionDenied
    return obj


# ---- the admin mixins -----------------------------------------------------------------------------


def _scoped_filter(entry: Any, model: type[models.Model]) -> Any:
    """A relation list filter lists only related rows the changelist (already scoped) refers to."""
    if not isinstance(entry, str):
        if (
            isinstance(entry, tuple)
            and len(entry) == 2
            and isinstance(entry[1], type)
            and issubclass(entry[1], RelatedFieldListFilter)
            and not issubclass(entry[1], RelatedOnlyFieldListFilter)
        ):
            return (entry[0], RelatedOnlyFieldListFilter)
        return entry
    from django.contrib.admin.utils import get_fields_from_path

    try:
        field = get_fields_from_path(model, entry)[-1]
    except (FieldDoesNotExist, Exception):  # noqa: BLE001 - leave an unusual filter to Django's checks
        return entry
    if field.is_relation:
        return (entry, RelatedOnlyFieldListFilter)
    return entry


class TenantScopedAdmin:
    """Mix into a ModelAdmin (before admin.ModelAdmin) to scope it to the user's tenants.

    change_role: the role editing, deleting or adding needs (administer; alerts: operate).
    Actions: each acts only on the selected rows of tenants where the user holds the action's role
    (`action.tenant_role`, else change_role for actions needing add/change/delete, else operate).
    """

    change_role: str = Role.ADMINISTER
    tenant_scoped = True

    # -- rows
    def get_queryset(self, request):
        return scope(super().get_queryset(request), request.user)

    def get_object(self, request, object_id, from_field=None):
        # Django checks the model-level permission before it notices a missing object (a 403) and then
        # redirects to the index ("doesn't exist"): another tenant's object is a 404 before either.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with ID {object_id!r}.")
        return obj

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"No {opts.verbose_name} with ID {object_id!r}.")

    # -- permissions
    def _holds(self, request, obj, role: str) -> bool:
        user = request.user
        if user.is_superuser:
            return True
        if obj is None:
            return bool(tenant_ids(user, role))
        return allowed(user, tenant_id_of(obj), role)

    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) and self._holds(request, obj, Role.VIEW)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._holds(request, obj, self.change_role)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._holds(request, obj, self.change_role)

    def has_add_permission(self, request, *args):
        return super().has_add_permission(request, *args) and self._holds(request, None, self.change_role)

    def has_module_permission(self, request):
        return super().has_module_permission(request) and self._holds(request, None, Role.VIEW)

    # -- lists and forms
    def get_list_filter(self, request):
        return [_scoped_filter(f, self.model) for f in super().get_list_filter(request)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if field is not None and hasattr(field, "queryset") and tenant_path(db_field.related_model):
            field.queryset = scope(field.queryset, request.user, self.change_role)
        return field

    def save_model(self, request, obj, form, change):
        if not self._holds(request, obj, self.change_role):
            raise PermissionDenied
        return super().save_model(request, obj, form, change)

    # -- actions
    def action_role(self, request, name: str) -> str:
        entry = self.get_actions(request).get(name)
        func = entry[0] if entry else None
        role = getattr(func, "tenant_role", None)
        if role:
            return role
        needs = set(getattr(func, "allowed_permissions", ()) or ())
        return self.change_role if needs & {"add", "change", "delete"} else Role.OPERATE

    def response_action(self, request, queryset):
        names = request.POST.getlist("action")
        try:
            name = names[int(request.POST.get("index", 0))]
        except (IndexError, ValueError):
            name = names[0] if names else ""
        if name:
            queryset = scope(queryset, request.user, self.action_role(request, name))
        return super().response_action(request, queryset)


class ScopedModelAdmin(TenantScopedAdmin, admin.ModelAdmin):
    """The base class of every console ModelAdmin."""


class SuperuserOnlyAdmin:
    """For admins of models with no tenant (task queue, users, groups, memberships): superusers only,
    within what the admin itself allows (django-q2's task lists are read-only, for example)."""

    tenant_scoped = False

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        raise Http404(f"No {opts.verbose_name} with ID {object_id!r}.")

    @staticmethod
    def _superuser(request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request) and super().has_view_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request) and super().has_delete_permission(request, obj)

    def has_add_permission(self, request, *args):
        return self._superuser(request) and super().has_add_permission(request, *args)


class ReadOnlyAdmin(ScopedModelAdmin):
    """Viewable by anyone with the view permission (within their tenants); never added, changed or
    deleted from the console: the audit trail, evidence exports and reconciliation runs."""

    def has_add_permission(self, request, *args):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
