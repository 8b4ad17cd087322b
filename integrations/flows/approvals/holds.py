"""Clearing a finance-control hold (the duplicate-invoice hold), as an operator does in the console:
with a reason, audited, said on the task; then the task is looked at again, so an approval already given
releases the bill (once: the release path is idempotent) and a later one releases it as usual."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from integrations.base import errors
from integrations.flows import clients as flow_clients
from integrations.flows.common import control_effects as fx
from integrations.models import ControlHold, Flow, RecordLink

log = logging.getLogger(__name__)


class HoldError(ValueError):
    """The hold cannot be cleared as asked (the message says why)."""


def clear_hold(hold_id: int, *, tenant_id: int, actor: str, reason: str) -> ControlHold:
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise HoldError("say why the hold is cleared (at least a few words): the reason is audit evidence")
    with transaction.atomic():
        hold = (
            ControlHold.objects.select_for_update()
            .select_related("link")
            .filter(pk=hold_id, tenant_id=tenant_id)
            .first()
        )
        if hold is None:
            raise HoldError("no such hold in this tenant")
        if hold.cleared_at is not None:
            raise HoldError(f"already cleared by {hold.cleared_by} at {hold.cleared_at:%Y-%m-%d %H:%M}")
        hold.cleared_at, hold.cleared_by, hold.clear_reason = timezone.now(), actor, reason
        hold.save(update_fields=["cleared_at", "cleared_by", "clear_reason"])
    link = hold.link
    fx.decision(
        link,
        link.flow,
        "duplicate_hold_cleared",
        "succeeded",
        f"cleared by {actor}: {reason}",
        hold=hold.pk,
        duplicate_of=hold.duplicate_of,
        actor=actor,
    )
    from django_q.tasks import async_task

    # The function itself, not a dotted string: a renamed module fails at import, not in the worker.
    async_task(recheck, link.pk, task_name=f"hold-cleared-{hold.pk}")
    return hold


def recheck(link_id: int) -> str:
    """Look at the task of a link again after its hold was cleared (say so on the task, then act)."""
    from integrations.flows.approvals.release import handle_task_change

    link = RecordLink.objects.select_related("tenant", "flow").get(pk=link_id)
    project = link.flow.asana_project_gid if link.flow_id else ""
    flow = (
        Flow.objects.filter(
            tenant=link.tenant, kind=Flow.Kind.ASANA_APPROVALS, enabled=True, asana_project_gid=project
        )
        .order_by("pk")
        .first()
    )
    clients = flow_clients.clients_for(link.tenant)
    hold = link.control_holds.exclude(cleared_at=None).order_by("-cleared_at").first()
    if hold is not None:
        fx.comment(
            clients.asana,
            link.asana_task_gid,
            f"Duplicate hold cleared by {hold.cleared_by}: {hold.clear_reason}. "
            "The approval now releases the bill.",
        )
    if flow is None or not link.asana_task_gid:
        return "no approvals flow for this document's project"
    try:
        return handle_task_change(flow, link.asana_task_gid, clients=clients)
    except errors.ConnectorError as exc:
        log.warning("re-check after a cleared hold of %s: %s", link, exc)
        return f"re-check failed ({exc}); the next approval event or poll acts"
