"""The finance controls in the console (issue 20).

    Flow → "Finance controls" page   <flow>/controls/: the flow's controls block (JSON), validated on
                                      save with errors naming the field (the same rules as `config
                                      apply`); the tiers it defines; its holds, refusals and stuck
                                      approvals. Saving needs the administer role.
    Control holds                     the duplicate-invoice holds; "Clear" (operate role) asks for a
                                      reason, audits it, says it on the task and re-checks the approval.
    stuck_approvals(user)             the dashboard panel: approvals escalated and still pending, with
                                      the amount at stake and the discount at risk.
Everything is tenant-scoped (tenancy.py): another tenant's flow or hold answers 404.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit.models import AuditEntry
from audit.recorder import record_entry
from integrations.flows.approvals import holds
from integrations.flows.common.controls import config as controls_config
from integrations.models import ControlHold, Flow, RecordLink
from mappings.models import UserMapping

from .tenancy import Role, ScopedModelAdmin, allowed, get_scoped_or_404, scope

DECISIONS = (
    "controls.segregation_of_duties",
    "controls.approval_levels",
    "controls.duplicate_hold",
    "controls.duplicate_hold_cleared",
    "controls.escalation",
    "controls.configured",
)


def stuck_approvals(user: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The latest escalation of each document whose approval is still pending (not released, linked)."""
    rows = scope(AuditEntry.objects.filter(operation="controls.escalation"), user).select_related(
        "record_link", "tenant"
    )
    out: dict[int, dict[str, Any]] = {}
    for entry in rows.order_by("-created_at", "-pk")[: limit * 4]:
        link = entry.record_link
        if link is None or link.pk in out or link.state != RecordLink.State.LINKED:
            continue
        if (link.approved_snapshot or {}).get("released_at"):
            continue
        payload = entry.payload or {}
        out[link.pk] = {
            "tenant": entry.tenant,
            "link": link,
            "document": f"{link.acumatica_type} {link.acumatica_ref}",
            "task_url": f"https://app.asana.com/0/0/{link.asana_task_gid}",
            "why": entry.error,
            "amount": payload.get("amount"),
            "discount_amount": payload.get("discount_amount"),
            "discount_date": payload.get("discount_date"),
            "since": entry.created_at,
        }
    return list(out.values())[:limit]


class FlowControlsPage:
    """Adds the "Finance controls" page to FlowAdmin."""

    def get_urls(self):
        return [
            path(
                "<int:flow_id>/controls/",
                self.admin_site.admin_view(self.controls_view),
                name="integrations_flow_controls",
            )
        ] + super().get_urls()

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions["finance_controls"] = self.get_action("finance_controls")
        return actions

    @admin.action(description="Finance controls: show or change the flow's controls")
    def finance_controls(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one flow.", messages.WARNING)
            return None
        return redirect(reverse("admin:integrations_flow_controls", args=[queryset.get().pk]))

    def controls_view(self, request, flow_id: int):
        flow = get_scoped_or_404(request.user, Flow.objects.select_related("tenant"), pk=flow_id)
        can_edit = allowed(request.user, flow.tenant_id, Role.ADMINISTER)
        current = (flow.options or {}).get("controls") or {}
        text, problems = json.dumps(current, indent=2), []
        if request.method == "POST":
            if not can_edit:
                raise PermissionDenied
            text = request.POST.get("controls") or "{}"
            try:
                raw = json.loads(text)
            except ValueError as exc:
                problems = [f"controls: not valid JSON ({exc})"]
            else:
                known = UserMapping.objects.filter(tenant=flow.tenant).exclude(asana_user_gid="")
                problems = controls_config.validation_errors(
                    raw, known_users=known.values_list("asana_user_gid", flat=True), kind=flow.kind
                )
            if not problems:
                flow.options = {**(flow.options or {}), "controls": raw}
                flow.save(update_fields=["options"])
                record_entry(
                    tenant=flow.tenant,
                    flow=flow,
                    operation="controls.configured",
                    status="succeeded",
                    actor=request.user.get_username(),
                    record_key=str(flow),
                    payload={"before": current, "after": raw},
                )
                messages.success(request, "The finance controls were saved.")
                return redirect(reverse("admin:integrations_flow_controls", args=[flow.pk]))
        parsed = controls_config.controls_of({"controls": current})
        links = RecordLink.objects.filter(flow=flow)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Finance controls: {flow}",
            "opts": Flow._meta,
            "flow": flow,
            "text": text,
            "problems": problems,
            "can_edit": can_edit,
            "controls": parsed,
            "tiers": [t.describe() for t in parsed.tiers] if parsed.tiers_enabled else [],
            "holds": ControlHold.objects.filter(link__in=links).select_related("link")[:100],
            "decisions": AuditEntry.objects.filter(tenant=flow.tenant, operation__in=DECISIONS, flow=flow)
            .select_related("record_link")
            .order_by("-created_at", "-pk")[:50],
        }
        return TemplateResponse(request, "admin/console/controls.html", context)


@admin.register(ControlHold)
class ControlHoldAdmin(ScopedModelAdmin):
    list_display = ("link", "kind", "reason", "created_at", "state", "clear_link")
    list_filter = ("kind",)
    search_fields = ("link__acumatica_ref", "reason", "duplicate_of")
    readonly_fields = [f.name for f in ControlHold._meta.fields]

    def has_add_permission(self, request, *args):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="State")
    def state(self, obj):
        return f"cleared by {obj.cleared_by}: {obj.clear_reason}" if obj.cleared_at else "held"

    @admin.display(description="")
    def clear_link(self, obj):
        if obj.cleared_at:
            return ""
        return format_html(
            '<a class="button" href="{}">Clear…</a>',
            reverse("admin:integrations_controlhold_clear", args=[obj.pk]),
        )

    def get_urls(self):
        return [
            path(
                "<int:hold_id>/clear/",
                self.admin_site.admin_view(self.clear_view),
                name="integrations_controlhold_clear",
            )
        ] + super().get_urls()

    def clear_view(self, request, hold_id: int):
        hold = get_scoped_or_404(
            request.user, ControlHold.objects.select_related("link", "tenant"), Role.OPERATE, pk=hold_id
        )
        error = ""
        if request.method == "POST":
            try:
                holds.clear_hold(
                    hold.pk,
                    tenant_id=hold.tenant_id,
                    actor=request.user.get_username(),
                    reason=request.POST.get("reason", ""),
                )
            except holds.HoldError as exc:
                error = str(exc)
            else:
                messages.success(
                    request, f"The hold on {hold.link} was cleared; its approval is checked again."
                )
                return redirect(reverse("admin:integrations_controlhold_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Clear the hold on {hold.link}",
            "opts": ControlHold._meta,
            "hold": hold,
            "error": error,
        }
        return TemplateResponse(request, "admin/console/hold_clear.html", context)
