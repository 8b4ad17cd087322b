"""Replay for the documents flow: Acumatica bill / PO → Asana task (operations create_task, update_task,
sync_document, quarantine_task, close_task; flow kinds acumatica_bills / acumatica_purchase_orders).

Preview: re-read the document, build the desired task with the flow's own `plan_document`, against the
task AS IT IS IN ASANA NOW (not the last payload we wrote: an edit made in Asana since shows up and is
overwritten). Execute: under the record lock, remember the task's current state as the last payload,
then the flow's own `DocumentSync.process` decides and writes (claim, reconcile and audit included).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from audit.models import AuditEntry, SyncRun
from integrations.asana import fields as cf
from integrations.base import errors
from integrations.flows.common.replay import Preview
from integrations.models import Flow, RecordLink

DOCUMENT_OPERATIONS = ("create_task", "update_task", "sync_document", "quarantine_task", "close_task")


def _current_payload(task: dict[str, Any] | None) -> dict[str, Any]:
    """The task as read from Asana in the shape of the payload we write (custom_fields {gid: wire})."""
    if not task:
        return {}
    out: dict[str, Any] = {"name": task.get("name", "")}
    if "notes" in task:
        out["notes"] = task.get("notes")
    out["custom_fields"] = {
        str(e["gid"]): cf.wire_value_of(e) for e in task.get("custom_fields") or [] if e.get("gid")
    }
    return out


def _labels(flow: Flow) -> dict[str, str]:
    from mappings.models import FieldMapping

    names = {
        f"custom_fields.{m.asana_field_gid}": f"{m.cached_name or m.source_path} ({m.source_path})"
        for m in FieldMapping.objects.filter(flow=flow)
    }
    if flow.erp_reference_field_gid:
        names[f"custom_fields.{flow.erp_reference_field_gid}"] = "ERP reference"
    return names


class DocumentReplay:
    name = "documents"

    def _sync(self, link: RecordLink, **kwargs: Any):
        from integrations.flows.documents.sync import DocumentSync

        if link.flow is None:
            raise errors.ConfigurationError(f"{link} has no flow")
        return DocumentSync(link.flow, **kwargs)

    def _task(self, sync, link: RecordLink) -> dict[str, Any] | None:
        if not link.asana_task_gid:
            return None
        try:
            return sync.asana.get_task(link.asana_task_gid, fields=("name", "notes", "custom_fields"))
        except errors.NotFound:
            return None

    def preview(self, link: RecordLink, entry: AuditEntry | None) -> Preview:
        from integrations.flows.documents.plan import LinkView, plan_document

        sync = self._sync(link, dry_run=True)  # dry run: no client records API-call rows
        key = f"{link.acumatica_type}/{link.acumatica_ref}"
        record = sync.read(link.acumatica_type, link.acumatica_ref)
        task = self._task(sync, link)
        current = _current_payload(task)
        view = LinkView(link.state, link.asana_task_gid if task else "", "", current)
        plan = plan_document(record, sync.settings, view, sync._specs_or_none(), key=key)
        labels = _labels(link.flow)
        diff = {labels.get(k, k): v for k, v in (plan.diff or {}).items()}
        if plan.action == "create":
            values = plan.payload.get("custom_fields") or {}
            diff = {"name": [None, plan.payload.get("name")]}
            diff.update({labels.get(f"custom_fields.{g}", g): [None, v] for g, v in values.items()})
        summary = {
            "create": "the task is missing in Asana: a new task would be created",
            "update": f"{len(diff)} field(s) differ from the task in Asana and would be written",
            "skip": f"nothing to write ({plan.reason})",
            "quarantine": f"cannot be written: {plan.reason}",
            "close": f"the task would be closed ({plan.reason})",
        }.get(plan.action, plan.action)
        return Preview(
            link.pk,
            key,
            plan.action,
            diff=diff,
            summary=summary,
            runnable=plan.action != "quarantine",
            reason=plan.reason if plan.action == "quarantine" else "",
        )

    def execute(self, link: RecordLink, entry: AuditEntry | None, *, actor: str, run: SyncRun) -> str:
        sync = self._sync(link, run=run, actor=actor)
        task = self._task(sync, link)
        with transaction.atomic():
            locked = RecordLink.objects.select_for_update().get(pk=link.pk)
            # Compare against what Asana holds now: the flow then writes exactly the preview's diff.
            locked.payload_hash = ""
            locked.last_payload = _current_payload(task)
            if task is None and locked.asana_task_gid:
                locked.asana_task_gid = ""  # deleted in Asana: the flow recreates it (reconcile first)
            locked.save(update_fields=["payload_hash", "last_payload", "asana_task_gid", "updated_at"])
        outcome = sync.process(link.acumatica_type, link.acumatica_ref)
        return f"{outcome.plan.action}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else "")
