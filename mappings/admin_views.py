"""Console actions for the documents flows: "Discover Asana fields" (a two-step view) and "Sync now".

Mixed into FlowAdmin (integrations/admin.py). Permission-checked (change permission on Flow);
discovery reads the project's fields, shows a form to pick them by name per source path, and stores
GIDs — a type mismatch is refused with its reason and nothing of that row is stored.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.shortcuts import redirect, render
from django.urls import path, reverse

from integrations.base import errors
from integrations.models import Flow

from .discovery import apply_selection, choices, refusal, source_fields
from .models import FieldMapping

DOCUMENT_KINDS = (Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS)


class DocumentFlowActions:
    """Adds the two actions and the discovery view to a ModelAdmin of Flow."""

    def get_urls(self):
        mine = [
            path(
                "<int:flow_id>/discover-fields/",
                self.admin_site.admin_view(self.discover_fields_view),
                name="integrations_flow_discover_fields",
            )
        ]
        return mine + super().get_urls()

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.has_change_permission(request):
            for name in ("discover_asana_fields", "sync_now"):
                actions[name] = self.get_action(name)
        return actions

    @admin.action(description="Discover Asana fields (pick by name, store GIDs)")
    def discover_asana_fields(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one flow to discover its fields.", messages.WARNING)
            return None
        return redirect(reverse("admin:integrations_flow_discover_fields", args=[queryset.get().pk]))

    @admin.action(description="Sync now (bills / purchase orders)")
    def sync_now(self, request, queryset):
        from django_q.tasks import async_task

        from integrations.flows.documents.tasks import poll_flow

        flows = [f for f in queryset if f.kind in DOCUMENT_KINDS and f.enabled]
        for flow in flows:
            async_task(poll_flow, flow.pk, "manual", request.user.get_username())
        skipped = queryset.count() - len(flows)
        note = f" ({skipped} skipped: disabled or not a documents flow)" if skipped else ""
        self.message_user(request, f"Queued a sync pass for {len(flows)} flow(s){note}.", messages.SUCCESS)

    def discover_fields_view(self, request, flow_id: int):
        from integrations.console.tenancy import Role, get_scoped_or_404

        flow = get_scoped_or_404(
            request.user, Flow.objects.select_related("tenant"), Role.ADMINISTER, pk=flow_id
        )
        if not self.has_change_permission(request, flow):
            raise PermissionDenied
        back = reverse("admin:integrations_flow_change", args=[flow.pk])
        if flow.kind not in DOCUMENT_KINDS:
            self.message_user(
                request, "Field discovery is for bills / purchase order flows.", messages.WARNING
            )
            return redirect(back)
        try:
            from integrations.asana.client import client_for

            specs = client_for(flow.tenant.asana).project_custom_fields(flow.asana_project_gid)
        except (errors.ConnectorError, errors.ConfigurationError, ObjectDoesNotExist) as exc:
            self.message_user(request, f"Could not read the project's custom fields: {exc}", messages.ERROR)
            return redirect(back)
        fields = source_fields(flow)
        current = {
            m.source_path: m.asana_field_gid
            for m in FieldMapping.objects.filter(flow=flow, direction=FieldMapping.Direction.TO_ASANA)
        }
        refused: dict[str, str] = {}
        if request.method == "POST":
            selection = {p: request.POST.get(f"field__{p}", "") for p in fields}
            saved, refused = apply_selection(flow, selection, specs)
            if saved:
                self.message_user(request, f"Stored {len(saved)} mapping(s): " + "; ".join(saved))
            if not refused:
                return redirect(back)
            current.update({p: g for p, g in selection.items() if g})
        options = choices(specs)
        rows = []
        for source_path, source_type in fields.items():
            selected = current.get(source_path, "")
            hints = {gid: refusal(source_path, source_type, specs[gid]) for gid, _label in options}
            rows.append(
                {
                    "path": source_path,
                    "type": source_type,
                    "selected": selected,
                    "options": [(gid, label, hints[gid]) for gid, label in options],
                    "error": refused.get(source_path, ""),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Discover Asana fields — {flow}",
            "flow": flow,
            "rows": rows,
            "opts": self.model._meta,
            "back": back,
        }
        return render(request, "admin/mappings/discover_fields.html", context)
