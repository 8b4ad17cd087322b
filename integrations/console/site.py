"""Installs the console on the admin site without editing the other apps' admin classes.

Called by connector_site/urls.py, after the admin has autodiscovered every app's admin module. Each
console mixin is layered on the registered class by
re-registering a subclass, so the owners' admin modules stay as they are:

    RecordLink  + lineage page, replay action (with diff preview), "Lineage" column
    Flow        + dry-run page and action, the finance controls page (controls.py)
    index       + the health dashboard (templates/admin/index.html reads `dashboard`)
    setup/      the setup wizard's pages (console/wizard.py)

and registers the console's own admins: reconciliation runs (console/reconciliation.py) and evidence
exports (console/evidence.py).

Then every admin registered so far that is not scoped already gets scoped: TenantScopedAdmin when its
model reaches a tenant, SuperuserOnlyAdmin otherwise (django-q2's queue, users, groups). A new admin
is tenant-scoped even if its author forgot the base class.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin


def _layer(site: admin.AdminSite, model: Any, mixin: type) -> None:
    current = site._registry.get(model)
    if current is None or isinstance(current, mixin):
        return
    base = type(current)
    site.unregister(model)
    site.register(model, type(f"Console{base.__name__}", (mixin, base), {"__module__": __name__}))


def install(site: admin.AdminSite) -> None:
    from integrations.models import Flow, RecordLink

    from .controls import FlowControlsPage, stuck_approvals
    from .dashboard import build_dashboard
    from .evidence import install as install_evidence
    from .reconciliation import install as install_reconciliation
    from .replay_admin import RecordLinkConsole
    from .tenancy import SuperuserOnlyAdmin, TenantScopedAdmin, tenant_path
    from .views import FlowConsole

    install_reconciliation(site)
    install_evidence(site)
    _layer(site, RecordLink, RecordLinkConsole)
    _layer(site, Flow, FlowConsole)
    _layer(site, Flow, FlowControlsPage)
    for model, model_admin in list(site._registry.items()):
        if not isinstance(model_admin, (TenantScopedAdmin, SuperuserOnlyAdmin)):
            _layer(site, model, TenantScopedAdmin if tenant_path(model) else SuperuserOnlyAdmin)
    if getattr(site, "_console_installed", False):
        return
    site._console_installed = True
    from .wizard import install as install_wizard

    install_wizard(site)  # /admin/setup/: the setup wizard's pages
    site.index_template = "admin/index.html"
    original = site.index

    def index(request, extra_context=None):
        context = dict(extra_context or {})
        if request.user.is_active and request.user.is_staff:
            from integrations.flows.operations.health import system_health
            from integrations.models import Tenant

            from .tenancy import scope

            context["dashboard"] = build_dashboard(request.user)
            context["stuck_approvals"] = stuck_approvals(request.user)
            # The queue is everyone's; runs, events and webhooks only of the user's tenants.
            context["cluster_health"] = system_health(tenants=scope(Tenant.objects.all(), request.user))
        return original(request, extra_context=context)

    site.index = index
