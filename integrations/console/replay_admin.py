"""Replay in the console: the lineage page, a per-record replay page and the bulk admin action.

Like Django's delete_selected: the action (or the record's "Replay" button) first renders a
confirmation page — for one record the field diff against the target's current state, for several
the counts (by flow and state) — and only a POST with `post=yes` enqueues anything. Everything is
permission-checked (`audit.replay_records`) and logged on the record's timeline.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit.models import AuditEntry
from integrations.flows import replay
from integrations.models import RecordLink

from . import lineage
from .permissions import can_replay
from .tenancy import Role, get_scoped_or_404

BULK_PREVIEW_LIMIT = 1  # above this, the page shows counts (no vendor reads for a filtered set)


def _run_url(run) -> str:
    return reverse("admin:audit_syncrun_progress", args=[run.pk])


def confirm_replay(
    modeladmin: admin.ModelAdmin,
    request,
    items: list[tuple[RecordLink, AuditEntry | None]],
    *,
    action: str = "",
    selected: list[str] | None = None,
) -> Any:
    """Render the confirmation page, or (POST post=yes) enqueue and redirect to the run's progress."""
    if not can_replay(request.user) or not all(can_replay(request.user, lk.tenant_id) for lk, _ in items):
        raise PermissionDenied
    if request.method == "POST" and request.POST.get("post") == "yes":
        actor = request.user.get_username()
        run = replay.enqueue(items, actor=actor, message=f"replay by {actor} from the console")
        if run is None:
            modeladmin.message_user(
                request, "Nothing to replay: no handler for these records.", messages.WARNING
            )
            return None
        for link, entry in items:
            what = f"audit entry #{entry.pk}" if entry else "record"
            lineage.log_operator_action(request, link, f"Replayed {what} (run #{run.pk})")
        modeladmin.message_user(
            request, f"Queued {run.progress_total} replay(s) as run #{run.pk}.", messages.SUCCESS
        )
        return redirect(_run_url(run))
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Replay: confirm",
        "opts": modeladmin.model._meta,
        "items": items,
        "action": action,
        "selected": selected or [],
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    if len(items) <= BULK_PREVIEW_LIMIT:
        context["previews"] = [replay.preview(link, entry) for link, entry in items]
        context["runnable"] = all(p.runnable for p in context["previews"])
    else:
        handled = [(lk, e) for lk, e in items if replay.handler_for(lk, e) is not None]
        context["counts"] = {
            "total": len(items),
            "replayable": len(handled),
            "no_handler": len(items) - len(handled),
            "by_flow": sorted(Counter(str(lk.flow or "—") for lk, _ in items).items()),
            "by_state": sorted(Counter(lk.get_state_display() for lk, _ in items).items()),
        }
        context["runnable"] = bool(handled)
    return TemplateResponse(request, "admin/console/replay_confirm.html", context)


class RecordLinkConsole:
    """Lineage page, replay page, replay action and a "Lineage" column for RecordLinkAdmin."""

    def get_actions(self, request):
        actions = super().get_actions(request)  # the owner's actions (deciding parked records) stay
        if can_replay(request.user):
            actions["replay_selected"] = self.get_action("replay_selected")
        return actions

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:link_id>/lineage/", wrap(self.lineage_view), name="integrations_recordlink_lineage"),
            path("<int:link_id>/replay/", wrap(self.replay_view), name="integrations_recordlink_replay"),
        ] + super().get_urls()

    def get_list_display(self, request):
        return (*super().get_list_display(request), "lineage_link")

    @admin.display(description="Lineage")
    def lineage_link(self, obj):
        return format_html(
            '<a href="{}">timeline</a>', reverse("admin:integrations_recordlink_lineage", args=[obj.pk])
        )

    @admin.action(description="Replay selected records (preview first)")
    def replay_selected(self, request, queryset):
        items = [(link, None) for link in queryset.select_related("flow", "tenant")]
        selected = [str(link.pk) for link, _ in items]
        return confirm_replay(self, request, items, action="replay_selected", selected=selected)

    def lineage_view(self, request, link_id: int):
        link = get_scoped_or_404(
            request.user, RecordLink.objects.select_related("flow", "tenant"), pk=link_id
        )
        if not self.has_view_permission(request, link):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Lineage: {link}",
            "opts": RecordLink._meta,
            "original": link,
            "link": link,
            "systems": lineage.systems(link),
            "timeline": lineage.timeline(link),
            "can_replay": can_replay(request.user, link.tenant_id),
        }
        return TemplateResponse(request, "admin/console/lineage.html", context)

    def replay_view(self, request, link_id: int):
        link = get_scoped_or_404(
            request.user, RecordLink.objects.select_related("flow", "tenant"), Role.OPERATE, pk=link_id
        )
        entry_id = request.GET.get("entry") or request.POST.get("entry")
        if entry_id and not str(entry_id).isdigit():
            raise Http404("No such audit entry.")
        entry = get_object_or_404(AuditEntry, pk=entry_id, record_link=link) if entry_id else None
        response = confirm_replay(self, request, [(link, entry)])
        return response or redirect(reverse("admin:integrations_recordlink_lineage", args=[link.pk]))


def replay_entries_action(modeladmin, request, queryset):
    """AuditEntryAdmin action: replay the selected entries (each through its record)."""
    entries = [
        e for e in queryset.select_related("record_link__flow", "record_link__tenant") if e.record_link
    ]
    skipped = queryset.count() - len(entries)
    if skipped and not entries:
        modeladmin.message_user(
            request, "None of the selected entries belongs to a record.", messages.WARNING
        )
        return None
    items = [(e.record_link, e) for e in entries]
    selected = [str(e.pk) for e in entries]
    return confirm_replay(modeladmin, request, items, action="replay_entries", selected=selected)


replay_entries_action.short_description = "Replay selected audit entries (preview first)"
