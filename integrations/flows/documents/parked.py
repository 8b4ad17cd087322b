"""A create whose outcome is unknown and whose candidate tasks cannot be proven the document's own is
parked (`RecordLink.State.NEEDS_PERSON`, reconcile.py). A person decides, once, from the console or
`connector links resolve`: adopt one of the listed tasks, or create a new one. Both are audited."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from audit.recorder import record_entry
from integrations.models import RecordLink


class CannotResolve(Exception):
    pass


def resolve(link_id: int, *, adopt_gid: str = "", create: bool = False, actor: str = "system") -> str:
    """Adopt `adopt_gid` (it must be one of the listed candidates) or allow a new create."""
    if bool(adopt_gid) == bool(create):
        raise CannotResolve("choose exactly one: adopt a candidate task, or create a new task")
    with transaction.atomic():
        link = RecordLink.objects.select_for_update().get(pk=link_id)
        if link.state != RecordLink.State.NEEDS_PERSON:
            raise CannotResolve(f"{link} is {link.get_state_display()}, not waiting for a person")
        candidates = [str(c.get("gid")) for c in (link.review or {}).get("candidates", [])]
        if adopt_gid:
            if adopt_gid not in candidates:
                raise CannotResolve(
                    f"task {adopt_gid} is not a candidate of {link} ({', '.join(candidates)})"
                )
            if RecordLink.objects.filter(asana_task_gid=adopt_gid).exclude(pk=link.pk).exists():
                raise CannotResolve(f"task {adopt_gid} already belongs to another link")
            link.asana_task_gid = adopt_gid
            link.state = RecordLink.State.LINKED
            link.payload_hash = ""  # the next sync writes the document's current values onto it
            link.state_reason = f"adopted task {adopt_gid} by {actor}"
            what = f"adopted task {adopt_gid}"
        else:
            link.state = RecordLink.State.CREATING
            link.state_reason = f"a new task will be created (decided by {actor})"
            link.attempt_started_at = None
            link.attempt_asana_started_at = None
            what = "a new task will be created on the next sync"
        decided = {**(link.review or {}), "decided": what, "by": actor}
        link.review = decided
        try:
            with transaction.atomic():
                link.save()
        except IntegrityError as exc:
            raise CannotResolve(f"task {adopt_gid} already belongs to another link") from exc
        record_entry(
            tenant=link.tenant,
            record_link=link,
            operation="resolve_unknown_create",
            status="succeeded",
            record_key=f"{link.acumatica_type}/{link.acumatica_ref}",
            payload=decided,
            actor=actor,
        )
    return f"{link}: {what}"
