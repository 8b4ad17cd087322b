"""A document's generations: a number re-used after its document was deleted (or whose Acumatica record
id changed: deleted and entered again, the deletion never seen — deletions arrive by push only) is a
new document. Its old link ends for good (its task closed), and the new one starts generation n+1 with
its own task: an approval given to the old task never acts on the new document.

A mixin of DocumentSync (acumatica_documents.py).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from audit.models import AuditEntry
from integrations.flows.documents.plan import Plan
from integrations.models import RecordLink


class GenerationsMixin:
    def _current_link(self, doc_type: str, number: str) -> RecordLink | None:
        """The live link of this natural key, else its newest ended generation (None: never seen)."""
        return (
            RecordLink.objects.filter(
                tenant=self.tenant, kind=self.doc.link_kind, acumatica_type=doc_type, acumatica_ref=number
            )
            .order_by("-generation")
            .first()
        )

    def current_links(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], RecordLink]:
        """`_current_link` for a whole page of keys, in one query."""
        out: dict[tuple[str, str], RecordLink] = {}
        rows = RecordLink.objects.filter(
            tenant=self.tenant, kind=self.doc.link_kind, acumatica_ref__in={number for _t, number in keys}
        ).order_by("generation")
        wanted = set(keys)
        for link in rows:
            key = (link.acumatica_type, link.acumatica_ref)
            if key in wanted:
                out[key] = link  # ordered by generation: the newest wins
        return out

    def _starts_new_generation(self, link: RecordLink, record: Any) -> bool:
        """A live document under a key whose link ended (deleted, voided, cancelled), or under a key
        whose link holds another Acumatica record (deleted and entered again, the delete never seen)."""
        if record is None or record.get("Status") in self.doc.closed_statuses:
            return False
        if not link.is_live:
            return True
        record_id = str(getattr(record, "id", None) or "")
        return bool(link.acumatica_id and record_id and record_id != link.acumatica_id)

    def _new_generation(self, old: RecordLink, record: Any, event: Any) -> RecordLink:
        """End the old link for good (closing its task if it is still open) and start the next one."""
        key = f"{old.acumatica_type}/{old.acumatica_ref}"
        if old.is_live:  # replaced without the delete ever being seen (deletions arrive by push only)
            plan = Plan("close", key, reason="deleted in Acumatica (its number was entered again)")
            plan.close_how = self.settings.on_closed
            with transaction.atomic():
                locked = RecordLink.objects.select_for_update().get(pk=old.pk)
                if locked.is_live:
                    if locked.asana_task_gid:
                        self._close(locked, plan)
                    else:
                        locked.state, locked.state_reason = RecordLink.State.DELETED, plan.reason
                        locked.save()
                    self._audit(locked, plan, AuditEntry.Status.SUCCEEDED, None, event)
        try:
            with transaction.atomic():
                link = RecordLink.objects.create(
                    tenant=self.tenant,
                    kind=self.doc.link_kind,
                    acumatica_type=old.acumatica_type,
                    acumatica_ref=old.acumatica_ref,
                    generation=old.generation + 1,
                    flow=self.flow,
                    state=RecordLink.State.CREATING,
                    state_reason=f"new: generation {old.generation + 1} of {key}",
                )
        except IntegrityError:  # another worker started it a moment ago
            link = self._current_link(old.acumatica_type, old.acumatica_ref)
        return link

    def _link_for(self, doc_type: str, number: str) -> RecordLink:
        """Get or create the lineage row; the unique constraint settles a race between two workers."""
        lookup = dict(
            tenant=self.tenant, kind=self.doc.link_kind, acumatica_type=doc_type, acumatica_ref=number
        )
        try:
            with transaction.atomic():
                return RecordLink.objects.create(
                    **lookup, flow=self.flow, state=RecordLink.State.CREATING, state_reason="new"
                )
        except IntegrityError:
            return self._current_link(doc_type, number)
