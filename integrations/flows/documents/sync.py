"""Acumatica bills / purchase orders → Asana tasks, exactly once (ARCHITECTURE §5, §6).

One document:  read it by key → lock its RecordLink → plan (pure, plan.py) → write → link + audit.
    create   commit state `creating` with the attempt time FIRST (a short transaction), then POST
             /tasks with every custom field in one call, then store the GID at once.
    a prior attempt whose outcome is unknown (timeout, 5xx after sending, a crash before the GID was
             stored) is reconciled by the natural key before anything is created again
             (reconcile.py); an attempt still in flight elsewhere (within the lease) is left alone
             and retried later. An adopted task is queued once for the approval flows: a person
             may have approved it while it had no link, and that change found nothing to act on.
    update   PUT only the changed fields; an unchanged payload hash costs no Asana call.
    stale    a copy older than the version the link already took (LastModifiedDateTime) writes
             nothing: two workers holding copies read at different moments never go backwards.
Permanent errors are written to the audit trail and the record shows failed/quarantined with its
reason; retryable errors are re-raised for the task queue, the record shows `retrying`.

The change feed (polling with a watermark, `poll`) is in documents_poll.py; this module is the unit
of work both polling and push notifications call.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from audit.recorder import append_entry, audit_context
from integrations.base import errors
from integrations.flows.documents.attachments import TaskAttachments
from integrations.flows.documents.create import (
    ANSWER_FIELDS,
    IN_FLIGHT,
    CreateInProgress,
    ExactlyOnceCreateMixin,
    Outcome,
)
from integrations.models import Flow, RecordLink
from integrations.validators import attachment_options

__all__ = ["IN_FLIGHT", "CreateInProgress", "DocumentSync", "Outcome"]
from integrations.flows.documents import batch
from integrations.flows.documents import controls as doc_controls
from integrations.flows.documents.generations import GenerationsMixin
from integrations.flows.documents.guard import ApprovalGuard
from integrations.flows.documents.plan import (
    DOCUMENT_TYPES,
    FlowSettings,
    LinkView,
    Plan,
    plan_document,
)
from integrations.flows.documents.plan import header_snapshot as _snapshot
from integrations.flows.documents.plan import parse_dt as _parse_dt
from integrations.flows.documents.settings import flow_settings, live_field_specs

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=120)


_UNREAD: Any = object()  # `process(link=…)` not given: the link is looked up


def _noop_recorder(_record: Any) -> None:
    return None


class DocumentSync(GenerationsMixin, ExactlyOnceCreateMixin):
    """The flow's unit of work. One instance per pass (it caches the project's field definitions)."""

    def __init__(
        self,
        flow: Flow,
        *,
        acumatica: Any = None,
        asana: Any = None,
        run: Any = None,
        dry_run: bool = False,
        now: Any = None,
        actor: str = "system",
        live_specs: Any = None,
    ):
        if flow.kind not in DOCUMENT_TYPES:
            raise errors.ConfigurationError(f"flow {flow} is a {flow.kind} flow, not bills/purchase orders")
        self.flow = flow
        self.tenant = flow.tenant
        self.doc = DOCUMENT_TYPES[flow.kind]
        self.run = run
        self.dry_run = dry_run
        self.now = now or timezone.now
        self.actor = actor
        self._acumatica = acumatica
        self._asana = asana
        self._live_specs = live_specs
        self.settings: FlowSettings = flow_settings(flow)
        self.lease = timedelta(seconds=float(flow.options.get("create_lease_seconds", DEFAULT_LEASE.seconds)))
        self._adopted_checks: list[int] = []  # events stored for adopted tasks, enqueued after commit

    # ---- clients (lazy; a dry run records no ApiCall rows: it writes nothing anywhere) -------------
    @property
    def acumatica(self) -> Any:
        if self._acumatica is None:
            from integrations.acumatica.client import client_for

            extra = {"recorder": _noop_recorder} if self.dry_run else {}
            self._acumatica = client_for(self.tenant.acumatica, **extra)
        return self._acumatica

    @property
    def asana(self) -> Any:
        if self._asana is None:
            from integrations.asana.client import client_for

            extra = {"recorder": _noop_recorder} if self.dry_run else {}
            self._asana = client_for(self.tenant.asana, **extra)
        return self._asana

    @property
    def live_specs(self) -> Any:
        """The project's custom field definitions, read once per pass (drift shows up here first)."""
        if self._live_specs is None:
            self._live_specs = live_field_specs(self.asana, self.settings.project_gid)
        return self._live_specs

    def refresh_specs(self) -> Any:
        """Read the field definitions now (start of a pass), bypassing the short cache."""
        self._live_specs = live_field_specs(self.asana, self.settings.project_gid, max_age=0)
        return self._live_specs

    # ---- reading the source -----------------------------------------------------------------------
    def read(self, doc_type: str, number: str) -> Any:
        """The document's header (no Details: thousands of lines are never needed here); None = gone."""
        try:
            if self.doc.entity == "Bill":
                return self.acumatica.get_bill(doc_type, number, expand=None)
            return self.acumatica.get_purchase_order(doc_type, number, expand=None)
        except errors.NotFound:
            return None

    # ---- one document -----------------------------------------------------------------------------
    def process(
        self,
        doc_type: str,
        number: str,
        *,
        record: Any = None,
        reread: bool = True,
        event: Any = None,
        link: Any = _UNREAD,
        claim: batch.Claim | None = None,
    ) -> Outcome:
        """Bring one document's task up to date. `record` (from a poll page) saves the re-read; `link`
        (the page's links, read in one query) saves the lookup; `claim` (the page's new documents,
        claimed in one statement: batch.py) saves the claim."""
        one_document = record is None and reread  # a replay, a push, a person: not a poll page
        if one_document:
            record = self.read(doc_type, number)
        key = f"{doc_type}/{number}"
        if claim is not None:
            return self._run(claim[0], key, record, event, claim[1], claimed=True)
        existing = self._current_link(doc_type, number) if link is _UNREAD else link
        if self._already_synced(existing, record):
            # The version the task already shows (a re-read in the poll's overlap window): no lock, no
            # write, no row — the pass's SyncRun counts it. Files are looked at only when this document
            # alone was asked for (a file attached in Acumatica changes nothing a poll sees).
            outcome = Outcome(
                key, Plan("skip", key, reason="unchanged"), AuditEntry.Status.UNCHANGED, existing.pk
            )
            if one_document:
                with audit_context(
                    run=self.run, record_link=existing, tenant_id=self.tenant.pk, actor=self.actor
                ):
                    self._attach_files(outcome)
            return outcome
        if existing is not None and self._starts_new_generation(existing, record):
            if self.dry_run:
                preview = plan_document(record, self.settings, LinkView(), self._specs_or_none(), key=key)
                preview.reason = f"new generation {existing.generation + 1}: {preview.reason}".rstrip(": ")
                return Outcome(key, preview, AuditEntry.Status.PLANNED, existing.pk)
            existing = self._new_generation(existing, record, event)
        preview = plan_document(record, self.settings, _view(existing), self._specs_or_none(), key=key)
        if self.dry_run:
            doc_controls.annotate_plan(self, preview, record)
            return Outcome(key, preview, AuditEntry.Status.PLANNED, getattr(existing, "pk", None))
        if existing is None and preview.action == "skip":
            self._audit(None, preview, AuditEntry.Status.SKIPPED, record, event)
            return Outcome(key, preview, AuditEntry.Status.SKIPPED)
        return self._run(existing or self._link_for(doc_type, number), key, record, event, preview)

    def _run(
        self, link: RecordLink, key: str, record: Any, event: Any, preview: Plan, *, claimed: bool = False
    ) -> Outcome:
        """The locked path of one document (a claimed one goes straight to its create)."""
        with audit_context(run=self.run, record_link=link, tenant_id=self.tenant.pk, actor=self.actor):
            try:
                if claimed:  # the page renewed it if it was ageing (poll.py, batch.keep_fresh)
                    outcome = self._create(
                        link.pk, key, preview, record, event, token=link.claim_token, link=link
                    )
                else:
                    outcome = self._process_locked(
                        link.pk, key, record, event, linked=bool(link.asana_task_gid)
                    )
                self._attach_files(outcome)
                return outcome
            except errors.RetryableError as exc:
                if not isinstance(exc, CreateInProgress):  # never touch another worker's claim
                    self._mark(link.pk, state=None, reason=f"retrying: {exc}", failed=True)
                self._audit(link, preview, AuditEntry.Status.RETRYING, record, event, error=exc)
                raise
            except errors.PermanentError as exc:
                state = (
                    RecordLink.State.QUARANTINED
                    if isinstance(exc, errors.Invalid)
                    else RecordLink.State.FAILED
                )
                self._mark(link.pk, state=state, reason=str(exc), failed=True)
                self._audit(link, preview, AuditEntry.Status.FAILED, record, event, error=exc)
                return Outcome(key, preview, AuditEntry.Status.FAILED, link.pk, error=str(exc))
            finally:
                self._enqueue_adopted_checks()

    def _attach_files(self, outcome: Outcome) -> None:
        """The document's files onto its task (attachments.py), once the task is written or found
        unchanged; a flow without `options.attachments.enabled` costs nothing here."""
        if not attachment_options(self.flow.options)["enabled"] or outcome.link_id is None:
            return
        link = RecordLink.objects.select_related("tenant").get(pk=outcome.link_id)
        if link.state != RecordLink.State.LINKED or not link.asana_task_gid:
            return
        report = TaskAttachments(
            self.flow, link, acumatica=self.acumatica, asana=self.asana, actor=self.actor
        ).sync()
        outcome.notes.extend(f"attachment skipped: {s}" for s in report.skipped)

    def _already_synced(self, link: RecordLink | None, record: Any) -> bool:
        """True only when this copy is the very version the link took, fully synced: a live, linked
        task with its approval baseline recorded, the same Acumatica record, last modified no later than
        the version already written. Anything else goes through the locked path."""
        if self.dry_run or link is None or record is None or link.state != RecordLink.State.LINKED:
            return False
        if not (
            link.asana_task_gid and link.guarded_values and link.payload_hash and link.source_modified_at
        ):
            return False
        record_id = str(getattr(record, "id", None) or "")
        if record_id and record_id != link.acumatica_id or self._starts_new_generation(link, record):
            return False
        modified = _parse_dt(record.get("LastModifiedDateTime"))
        if modified is None or modified > link.source_modified_at:
            return False
        plan = plan_document(
            record, self.settings, _view(link), self._specs_or_none(), key=link.acumatica_ref
        )
        return plan.action == "skip" and plan.reason == "unchanged" and plan.payload_hash == link.payload_hash

    def _specs_or_none(self) -> Any:
        try:
            return self.live_specs
        except errors.ConnectorError:
            if self.dry_run:
                return None
            raise

    def _process_locked(
        self, link_pk: int, key: str, record: Any, event: Any, *, linked: bool = False
    ) -> Outcome:
        now = self.now()
        # Asana's time, read before the row lock (it may cost a request): a create's window is on it.
        asana_now = None if linked else self.asana.asana_now()
        with transaction.atomic():
            link = RecordLink.objects.select_for_update().get(pk=link_pk)
            if record is not None:
                modified = _parse_dt(record.get("LastModifiedDateTime"))
                if modified and link.source_modified_at and modified < link.source_modified_at:
                    return self._stale(link, key, record, event)
                link.acumatica_id = getattr(record, "id", None) or link.acumatica_id
                link.source_modified_at = modified or link.source_modified_at
            plan = plan_document(record, self.settings, _view(link), self.live_specs, key=key)
            notes: list[str] = []
            if plan.action == "create" and link.state == RecordLink.State.NEEDS_PERSON:
                plan = Plan(
                    "skip", key, reason="create outcome unknown: waiting for a person to adopt or create"
                )
            if plan.action == "create" and link.attempt_started_at is not None:
                if link.state_reason == IN_FLIGHT and now - link.attempt_started_at < self.lease:
                    wait = (link.attempt_started_at + self.lease - now).total_seconds()
                    raise CreateInProgress(
                        f"{key}: another worker started creating its task at "
                        f"{link.attempt_started_at:%H:%M:%S}",
                        system="connector",
                        retry_after=max(1.0, wait),
                    )
                plan, notes = self._reconcile(link, plan, key, record)
                asana_now = self.asana.asana_now()  # just read from the reconcile's own answers
            if plan.action == "create":
                link.state = RecordLink.State.CREATING
                link.state_reason = IN_FLIGHT
                link.attempt_started_at = now
                # A new window: earlier attempts were reconciled and made no task that can be found.
                link.attempt_asana_started_at = asana_now or self.asana.asana_now()
                link.claim_token += 1
                link.review = {}
                link.save()
            else:
                return self._apply_locked(link, plan, record, event, notes)
        # The claim is committed: a crash from here on is reconciled by the next attempt.
        return self._create(link_pk, key, plan, record, event, token=link.claim_token, link=link)

    def _stale(self, link: RecordLink, key: str, record: Any, event: Any) -> Outcome:
        """This copy is older than the version the link already took (a poll page read before a push or
        another worker's re-read was handled): writing it would put old values back on the task. The
        newer version is on the task already, or on its way there under its own claim or retry."""
        plan = Plan(
            "skip",
            key,
            reason=f"stale copy (modified {record.get('LastModifiedDateTime')}); "
            f"the version of {link.source_modified_at.isoformat()} was already synced",
        )
        self._audit(link, plan, AuditEntry.Status.SKIPPED, record, event)
        return Outcome(key, plan, AuditEntry.Status.SKIPPED, link.pk, link.asana_task_gid)

    def _apply_locked(
        self, link: RecordLink, plan: Plan, record: Any, event: Any, notes: list[str]
    ) -> Outcome:
        """update / skip / quarantine / close, under the row lock."""
        status = AuditEntry.Status.SUCCEEDED
        if plan.action == "update":
            guard = ApprovalGuard(self, link, record)
            answer = self.asana.update_task(
                link.asana_task_gid, guard.changes(plan.changes), fields=ANSWER_FIELDS
            )
            self._linked(link, plan)
            guard.written(answer, event)
        elif plan.action == "skip":
            status = AuditEntry.Status.UNCHANGED if plan.reason == "unchanged" else AuditEntry.Status.SKIPPED
            if link.asana_task_gid and not link.guarded_values and link.state == RecordLink.State.LINKED:
                # A link from before approvals were bound: the values on the task now are the baseline.
                self._record_guarded(link, record, None, "baseline")
            if link.state == RecordLink.State.NEEDS_PERSON:
                status = AuditEntry.Status.QUARANTINED
            elif link.asana_task_gid and plan.payload_hash and link.payload_hash != plan.payload_hash:
                self._linked(link, plan)  # e.g. reconciled: remember what the task now holds
            elif link.asana_task_gid and link.state in (
                RecordLink.State.QUARANTINED,
                RecordLink.State.FAILED,
            ):
                self._linked(link, plan)
            elif not link.asana_task_gid and link.state != RecordLink.State.QUARANTINED:
                link.state_reason = plan.reason
            link.save()
        elif plan.action == "quarantine":
            status = AuditEntry.Status.QUARANTINED
            link.state = RecordLink.State.QUARANTINED
            link.state_reason = plan.reason
            link.save()
        elif plan.action == "close":
            self._close(link, plan)
        if status != AuditEntry.Status.UNCHANGED or notes:
            # An unchanged document costs no row: the pass's SyncRun counts it. Rows are for effects,
            # refusals and failures (retention keeps those long; issue 17's lean ingest).
            self._audit(link, plan, status, record, event, notes=notes)
        return Outcome(plan.key, plan, status, link.pk, link.asana_task_gid, notes=notes)

    def _linked(self, link: RecordLink, plan: Plan) -> None:
        link.state = RecordLink.State.LINKED
        link.state_reason = ""
        link.payload_hash = plan.payload_hash
        link.last_payload = plan.payload
        link.failure_count = 0
        link.save()

    def _close(self, link: RecordLink, plan: Plan) -> None:
        how = plan.close_how
        gid = link.asana_task_gid
        if how == "complete":
            self.asana.add_comment(gid, f"{plan.key} was {plan.reason} (ml-connector).")
            self.asana.update_task(gid, {"completed": True}, fields=ANSWER_FIELDS)
        elif how == "section" and self.settings.closed_section_gid:
            self.asana.move_to_section(gid, self.settings.closed_section_gid)
        link.state = RecordLink.State.DELETED if "deleted" in plan.reason else RecordLink.State.CLOSED
        link.state_reason = f"{plan.reason}; task {'left as is' if how == 'leave' else how + 'd'}"
        link.save()

    def _record_guarded(
        self,
        link: RecordLink,
        record: Any,
        answer: dict[str, Any] | None,
        operation: str,
        *,
        approval_reset: bool = False,
    ):
        """What the connector just wrote, with Asana's time of the write (the answer's modified_at)."""
        from integrations.flows.common import binding

        values, when = self._guarded_of(link, record, answer)
        if not values:
            return False, {}
        changed, previous = binding.record_guarded_write(
            link.pk, values, when, operation=operation, approval_reset=approval_reset
        )
        if changed:  # keep the caller's instance in step: a later save() must not undo this
            link.guarded_values, link.guarded_written_at = dict(values), when
        return changed, previous

    def _guarded_of(
        self, link: RecordLink, record: Any, answer: dict[str, Any] | None
    ) -> tuple[dict[str, Any], Any]:
        """The guarded values of this copy of the document, and Asana's time of the write that put
        them on the task (the answer's modified_at; Asana's clock now if it has none)."""
        if record is None:
            return {}, None
        from integrations.asana.shapes import parse_asana_time
        from integrations.flows.common import binding

        values = binding.guarded_values(
            record, self._mapped, binding.guarded_paths(link.kind, self.flow.options)
        )
        if not values:
            return {}, None
        return values, parse_asana_time((answer or {}).get("modified_at")) or self.asana.asana_now()

    @property
    def _mapped(self) -> list[tuple[str, int | None]]:
        from integrations.flows.common import binding

        return binding.mapped_guards(self.settings.mappings, self.settings.erp_reference_field_gid)

    # ---- bookkeeping ----------------------------------------------------------------------------------
    def _mark(
        self, link_pk: int, *, state: str | None, reason: str, failed: bool = False, own_claim: bool = False
    ) -> None:
        """Note a state/reason; another worker's in-flight claim is left alone unless it is ours."""
        fields: dict[str, Any] = {"state_reason": reason[:2000], "updated_at": timezone.now()}
        if state:
            fields["state"] = state
        qs = RecordLink.objects.filter(pk=link_pk)
        if not own_claim:
            qs = qs.exclude(state_reason=IN_FLIGHT)
        if failed:
            from django.db.models import F

            fields["failure_count"] = F("failure_count") + 1
        qs.update(**fields)

    def _audit(
        self,
        link: RecordLink | None,
        plan: Plan,
        status: str,
        record: Any,
        event: Any,
        *,
        error: Exception | None = None,
        notes: list[str] | None = None,
    ) -> None:
        operation = {"create": "create_task", "update": "update_task", "close": "close_task"}.get(
            plan.action, f"{plan.action}_task" if plan.action != "skip" else "sync_document"
        )
        written = plan.payload if plan.action == "create" else plan.changes
        if plan.action == "close":
            written = {"how": plan.close_how, "reason": plan.reason}
        text = "; ".join(
            [*(notes or []), *([str(error)] if error else []), *([plan.reason] if plan.reason else [])]
        )
        attempts = 1 + (link.failure_count if link is not None else 0)
        with audit_context(run=self.run, record_link=link, tenant_id=self.tenant.pk, actor=self.actor):
            append_entry(
                tenant=self.tenant,
                operation=operation,
                status=status,
                flow=self.flow,
                record_link=link,
                inbound_event=event,
                record_key=f"{self.doc.entity}:{plan.key}",
                idempotency_key=f"{self.tenant.slug}:{self.doc.entity}:{plan.key}",
                source_snapshot=_snapshot(record),
                payload=written or {},
                field_diff=plan.diff or {},
                error=text,
                error_class=type(error).__name__ if error else "",
                attempts=attempts,
            )


def _view(link: RecordLink | None) -> LinkView:
    if link is None:
        return LinkView()
    return LinkView(link.state, link.asana_task_gid, link.payload_hash, link.last_payload or {})
