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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEntry
from audit.recorder import audit_context, record_entry
from integrations.base import errors
from integrations.base.deadline import attempt_deadline
from integrations.models import Flow, RecordLink

from . import reconcile
from .document_settings import flow_settings, live_field_specs
from .plan import DOCUMENT_TYPES, FlowSettings, LinkView, Plan, plan_document

log = logging.getLogger(__name__)

IN_FLIGHT = "create in flight"
OUTCOME_UNKNOWN = "create outcome unknown: reconcile before creating again"
DEFAULT_LEASE = timedelta(seconds=120)
RETRY_UNKNOWN_AFTER = 30.0
# We never need the written task back, only Asana's time of the write (what approvals bind to).
ANSWER_FIELDS = ("name", "modified_at")
ADOPTED_CHECK = "asana:adopted:"  # dedupe key prefix of the event that re-checks an adopted task


class CreateInProgress(errors.RetryableError):
    """Another worker claimed the create of this document moments ago: try again after the lease."""


@dataclass
class Outcome:
    key: str
    plan: Plan
    status: str  # an AuditEntry.Status value
    link_id: int | None = None
    task_gid: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)


def _noop_recorder(_record: Any) -> None:
    return None


class DocumentSync:
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
        self, doc_type: str, number: str, *, record: Any = None, reread: bool = True, event: Any = None
    ) -> Outcome:
        """Bring one document's task up to date. `record` (from a poll page) saves the re-read."""
        if record is None and reread:
            record = self.read(doc_type, number)
        key = f"{doc_type}/{number}"
        existing = self._current_link(doc_type, number)
        if existing is not None and self._starts_new_generation(existing, record):
            if self.dry_run:
                preview = plan_document(record, self.settings, LinkView(), self._specs_or_none(), key=key)
                preview.reason = f"new generation {existing.generation + 1}: {preview.reason}".rstrip(": ")
                return Outcome(key, preview, AuditEntry.Status.PLANNED, existing.pk)
            existing = self._new_generation(existing, record, event)
        preview = plan_document(record, self.settings, _view(existing), self._specs_or_none(), key=key)
        if self.dry_run:
            return Outcome(key, preview, AuditEntry.Status.PLANNED, getattr(existing, "pk", None))
        if existing is None and preview.action == "skip":
            self._audit(None, preview, AuditEntry.Status.SKIPPED, record, event)
            return Outcome(key, preview, AuditEntry.Status.SKIPPED)
        link = existing or self._link_for(doc_type, number)
        with audit_context(run=self.run, record_link=link, tenant_id=self.tenant.pk, actor=self.actor):
            try:
                return self._process_locked(link.pk, key, record, event)
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

    def _specs_or_none(self) -> Any:
        try:
            return self.live_specs
        except errors.ConnectorError:
            if self.dry_run:
                return None
            raise

    def _current_link(self, doc_type: str, number: str) -> RecordLink | None:
        """The live link of this natural key, else its newest ended generation (None: never seen)."""
        return (
            RecordLink.objects.filter(
                tenant=self.tenant, kind=self.doc.link_kind, acumatica_type=doc_type, acumatica_ref=number
            )
            .order_by("-generation")
            .first()
        )

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

    def _process_locked(self, link_pk: int, key: str, record: Any, event: Any) -> Outcome:
        now = self.now()
        # Asana's time, read before the row lock (it may cost a request): a create's window is on it.
        asana_now = self._asana_now_if_unlinked(link_pk)
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
                plan, notes = self._reconcile(link, plan, key)
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
        return self._create(link_pk, key, plan, record, event, token=link.claim_token)

    def _asana_now_if_unlinked(self, link_pk: int) -> Any:
        has_task = (
            RecordLink.objects.filter(pk=link_pk).exclude(asana_task_gid="").values_list("pk", flat=True)
        )
        return None if has_task.exists() else self.asana.asana_now()

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

    def _identity(self, link: RecordLink, plan: Plan, key: str) -> reconcile.Identity:
        asana_conn = getattr(self.tenant, "asana", None)
        user = getattr(asana_conn, "connector_user_gid", "") or ""
        if not user and not self.settings.external_prefix:
            user = str((self.asana.me() or {}).get("gid") or "")
        return reconcile.Identity(
            key=key,
            name=plan.payload.get("name", ""),
            marker=reconcile.identity_marker(self.tenant.slug, key, link.generation, link.pk),
            generation=link.generation,
            link_id=link.pk,
            connector_user=user,
        )

    def _reconcile(self, link: RecordLink, plan: Plan, key: str) -> tuple[Plan, list[str]]:
        started = link.attempt_asana_started_at or self.asana.asana_now() - (
            timezone.now() - (link.attempt_started_at or timezone.now())
        )

        def linked_elsewhere(gids: list[str]) -> list[str]:
            return list(
                RecordLink.objects.filter(asana_task_gid__in=gids)
                .exclude(pk=link.pk)
                .values_list("asana_task_gid", flat=True)
            )

        verdict = reconcile.find_task(
            self.asana,
            self.settings,
            self._identity(link, plan, key),
            attempt_started=started,
            lease=self.lease,
            linked_elsewhere=linked_elsewhere,
        )
        how = reconcile.match_method(self.settings)
        notes = [f"reconciled by {how}", *verdict.notes]
        if verdict.ambiguous:
            self._park(link, verdict, key)
            return Plan("skip", key, reason="create outcome unknown: needs a person"), notes
        if verdict.undecided:
            raise errors.Unavailable(
                f"{key}: the lost create's task is not found yet; Asana's search index may not show it "
                f"yet, looking again in {verdict.retry_after:.0f} s before creating",
                system="asana",
                retry_after=verdict.retry_after,
            )
        task = verdict.task
        if task is None:
            return plan, [*notes, "no task found, creating"]
        notes.append(f"adopted task {task['gid']} from an earlier attempt")
        if verdict.duplicates:
            notes.append(
                f"further tasks carry the same key (duplicates to review): {', '.join(verdict.duplicates)}"
            )
        link.asana_task_gid = task["gid"]
        link.state = RecordLink.State.LINKED
        link.state_reason = ""
        link.attempt_started_at = None
        link.review = {}
        self._check_adopted_task(link, task)
        from integrations.asana.client import task_changes

        changes = task_changes(plan.payload, task)
        changes.pop("external", None)  # only readable with opt_fields=external under OAuth; set at create
        if not changes:
            return Plan(
                "skip",
                key,
                reason="reconciled; task already up to date",
                payload=plan.payload,
                payload_hash=plan.payload_hash,
            ), notes
        return Plan(
            "update",
            key,
            payload=plan.payload,
            changes=changes,
            payload_hash=plan.payload_hash,
            diff={k: ["(existing task)", v] for k, v in changes.items()},
        ), notes

    def _park(self, link: RecordLink, verdict: reconcile.Verdict, key: str) -> None:
        """A task that may be this document's cannot be proven ours: a person decides (adopt or create)."""
        listed = ", ".join(f"{c['gid']} ({c.get('name') or 'no name'})" for c in verdict.ambiguous)
        link.state = RecordLink.State.NEEDS_PERSON
        link.state_reason = (
            f"create outcome unknown — needs a person: the connector's user created task(s) {listed} "
            f"during the lost attempt, and none can be proven to be {key}'s; adopt one or create anew"
        )
        link.review = {"candidates": verdict.ambiguous, "key": key}
        link.attempt_started_at = None

    def _check_adopted_task(self, link: RecordLink, task: dict[str, Any]) -> None:
        """An adopted task sat in Asana unlinked (its creator died before storing the GID): a person
        may have approved or edited it meanwhile, and those changes found no RecordLink, so nothing
        acted on them, and the catch-up poll has seen them already. Queue the task once for the flows
        that consume its events (approvals, write-back), in this transaction: the adoption and the
        check commit together (a worker dying after the commit leaves a queued event for the sweep)."""
        from integrations.asana import watchdog

        if self.settings.project_gid not in watchdog.webhook_projects(self.tenant):
            return
        event_id = watchdog.store_task_change(
            self.tenant,
            self.settings.project_gid,
            task,
            f"{ADOPTED_CHECK}{self.tenant.pk}:{task['gid']}:{link.pk}",
            "task adopted from an earlier attempt: changes made while it was unlinked",
        )
        if event_id is not None:
            self._adopted_checks.append(event_id)

    def _enqueue_adopted_checks(self) -> None:
        """Enqueue the checks whose transaction committed (a rolled-back adoption stored none)."""
        from audit.models import InboundEvent
        from integrations.asana import webhooks

        ids, self._adopted_checks = self._adopted_checks, []
        if ids:
            stored = InboundEvent.objects.filter(pk__in=ids, dedupe_key__startswith=ADOPTED_CHECK)
            for event_id in stored.values_list("pk", flat=True):
                webhooks.enqueue(event_id)

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

    def _create(self, link_pk: int, key: str, plan: Plan, record: Any, event: Any, *, token: int) -> Outcome:
        payload = plan.payload
        link = RecordLink.objects.get(pk=link_pk)
        extra = None
        if "external" in payload:
            extra = {"external": {"gid": reconcile.external_gid(self.settings, key, link.generation)}}
        # The identity line proves whose task this is if the answer is lost (reconcile.py). It is
        # written at create only: once the GID is stored, nothing needs it.
        marker = reconcile.identity_marker(self.tenant.slug, key, link.generation, link.pk)
        notes = f"{payload['notes']}\n\n{marker}" if payload.get("notes") else marker
        with_section = bool(self.settings.section_gid) and self.flow.options.get("section_at_create", True)
        try:
            with attempt_deadline(self.lease.total_seconds() * 0.75):
                task = self.asana.create_task(
                    name=payload["name"],
                    project_gid=self.settings.project_gid,
                    section_gid=self.settings.section_gid if with_section else None,
                    custom_fields=payload.get("custom_fields") or None,
                    notes=notes,
                    extra=extra,
                    fields=ANSWER_FIELDS,
                )
        except errors.ConnectorError as exc:
            return self._create_failed(link_pk, key, plan, record, event, exc)
        link = self.store_created(link_pk, task["gid"], plan, token=token)
        if link is None:
            return self._orphan(link_pk, key, plan, task, record, event)
        self._record_guarded(link, record, task, "create")
        out_notes = []
        if self.settings.section_gid and not with_section:
            # Operator chose section_at_create=false: place the task with a second call.
            try:
                self.asana.move_to_section(task["gid"], self.settings.section_gid)
            except errors.ConnectorError as exc:
                out_notes.append(f"task created but not moved to section {self.settings.section_gid}: {exc}")
        self._audit(link, plan, AuditEntry.Status.SUCCEEDED, record, event, notes=out_notes)
        return Outcome(key, plan, AuditEntry.Status.SUCCEEDED, link_pk, task["gid"], notes=out_notes)

    def store_created(self, link_pk: int, task_gid: str, plan: Plan, *, token: int) -> RecordLink | None:
        """Store the new task's GID at once — only while our claim holds (fencing): None when another
        worker took the link over meanwhile (our lease ran out) or stored a task first."""
        with transaction.atomic():
            link = RecordLink.objects.select_for_update().get(pk=link_pk)
            if link.claim_token != token or link.asana_task_gid:
                return None
            link.asana_task_gid = task_gid
            link.attempt_started_at = None
            try:
                with transaction.atomic():
                    self._linked(link, plan)
            except IntegrityError:  # the task already belongs to another link (never shared)
                return None
        return link

    def _orphan(
        self, link_pk: int, key: str, plan: Plan, task: dict[str, Any], record: Any, event: Any
    ) -> Outcome:
        """Our create outlived our claim: another worker owns the document now. Our task is an orphan:
        close it, pointing at the winner, and say so in the audit trail (never two open tasks)."""
        link = RecordLink.objects.get(pk=link_pk)
        winner = link.asana_task_gid
        text = (
            f"Duplicate created by an attempt that lost its claim on {key}; "
            + (f"the document's task is {winner}." if winner else "another attempt is creating its task.")
            + " Closed by ml-connector."
        )
        note = f"orphan task {task['gid']} closed (claim lost; the document's task is {winner or 'pending'})"
        try:
            self.asana.add_comment(task["gid"], text)
            self.asana.update_task(task["gid"], {"completed": True}, fields=ANSWER_FIELDS)
        except errors.ConnectorError as exc:
            note = f"orphan task {task['gid']} could NOT be closed ({exc}); close it by hand"
        orphan_plan = Plan("close", key, reason=note, close_how="complete")
        self._audit(link, orphan_plan, AuditEntry.Status.SUCCEEDED, record, event, notes=[note])
        return Outcome(key, orphan_plan, AuditEntry.Status.SKIPPED, link_pk, winner, notes=[note])

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
        if record is None:
            return False, {}
        from integrations.asana.client import parse_asana_time

        from . import approval_binding as binding

        values = binding.guarded_values(
            record, self._mapped, binding.guarded_paths(link.kind, self.flow.options)
        )
        if not values:
            return False, {}
        when = parse_asana_time((answer or {}).get("modified_at")) or self.asana.asana_now()
        changed, previous = binding.record_guarded_write(
            link.pk, values, when, operation=operation, approval_reset=approval_reset
        )
        if changed:  # keep the caller's instance in step: a later save() must not undo this
            link.guarded_values, link.guarded_written_at = dict(values), when
        return changed, previous

    @property
    def _mapped(self) -> list[tuple[str, int | None]]:
        return [(m.source_path, m.precision) for m in self.settings.mappings]

    def _create_failed(
        self, link_pk: int, key: str, plan: Plan, record: Any, event: Any, exc: errors.ConnectorError
    ) -> Outcome:
        if exc.outcome_unknown:
            self._mark(link_pk, state=None, reason=OUTCOME_UNKNOWN, own_claim=True)
            # GET /tasks is read-your-write: look once now, before handing the retry to the queue.
            with transaction.atomic():
                link = RecordLink.objects.select_for_update().get(pk=link_pk)
                adopted, notes = self._reconcile(link, plan, key)
                if link.asana_task_gid or link.state == RecordLink.State.NEEDS_PERSON:
                    return self._apply_locked(link, adopted, record, event, [str(exc), *notes])
            raise errors.Unavailable(
                f"{key}: {exc}; no task found yet, will reconcile again before creating",
                system="asana",
                retry_after=RETRY_UNKNOWN_AFTER,
            ) from exc
        # Not applied (429, refused before sending, or refused by Asana): release our claim.
        verb = "not applied" if exc.retryable else "refused"
        self._mark(link_pk, state=None, reason=f"create {verb}: {exc}", own_claim=True)
        raise exc

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
            record_entry(
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


class ApprovalGuard:
    """An update that changes a guarded value of a document whose task is approved but not released:
    the new values, the approval reset and a comment naming old → new go out in one visible step, and
    the console lists it as "changed after approval". (Even without this, an approval older than the
    write never binds: approval_binding.py.)"""

    def __init__(self, sync: DocumentSync, link: RecordLink, record: Any):
        self.sync, self.link, self.record = sync, link, record
        self.reset: list[str] = []
        self.approvals_flow: Flow | None = None

    def changes(self, changes: dict[str, Any]) -> dict[str, Any]:
        from . import approval_binding as binding
        from .approvals import DONE_STATUSES, approval_verdict

        link, record = self.link, self.record
        if record is None or not link.guarded_values or record.get("Status") in DONE_STATUSES[link.kind]:
            return changes
        paths = binding.guarded_paths(link.kind, self.sync.flow.options)
        new = binding.guarded_values(record, self.sync._mapped, paths)
        if not new or new == link.guarded_values:
            return changes
        self.approvals_flow = (
            Flow.objects.filter(
                tenant=self.sync.tenant,
                kind=Flow.Kind.ASANA_APPROVALS,
                enabled=True,
                asana_project_gid=self.sync.settings.project_gid,
            )
            .order_by("pk")
            .first()
        )
        if self.approvals_flow is None:
            return changes
        task = self.sync.asana.get_task(link.asana_task_gid)
        approved, _why = approval_verdict(self.approvals_flow, task)
        if not approved:
            return changes
        self.reset = binding.describe_changes(link.guarded_values, new)
        return binding.merge_changes(changes, binding.approval_reset_changes(self.approvals_flow, task))

    def written(self, answer: dict[str, Any] | None, event: Any) -> None:
        changed, _previous = self.sync._record_guarded(
            self.link, self.record, answer, "update", approval_reset=bool(self.reset)
        )
        if not self.reset:
            return
        text = "; ".join(self.reset)
        comment = (
            f"Changed in Acumatica after approval: {text}. The approval was reset: please review the new "
            "values and approve again. (ml-connector)"
        )
        try:
            self.sync.asana.add_comment(self.link.asana_task_gid, comment)
        except errors.ConnectorError as exc:
            log.warning("could not comment on task %s: %s", self.link.asana_task_gid, exc)
        RecordLink.objects.filter(pk=self.link.pk).update(approved_snapshot={})
        self.link.approved_snapshot = {}
        record_entry(
            tenant=self.sync.tenant,
            flow=self.sync.flow,
            record_link=self.link,
            operation="changed_after_approval",
            status=AuditEntry.Status.SUCCEEDED,
            record_key=f"{self.sync.doc.entity}:{self.link.acumatica_type}/{self.link.acumatica_ref}",
            payload={"changes": self.reset, "approval_reset": True},
            inbound_event=event,
            error=f"changed after approval: {text}; approval reset and a new approval asked for",
        )


def _view(link: RecordLink | None) -> LinkView:
    if link is None:
        return LinkView()
    return LinkView(link.state, link.asana_task_gid, link.payload_hash, link.last_payload or {})


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    from integrations.acumatica.values import parse_datetime

    try:
        return parse_datetime(str(value))
    except ValueError:
        return None


def _snapshot(record: Any) -> dict[str, Any]:
    """The header as read (Details summarised: a bill may carry thousands of lines)."""
    if record is None:
        return {"deleted": True}
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, list):
            out[key] = f"{len(value)} line(s)"
        elif isinstance(value, dict):
            continue
        else:
            out[key] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
    return out
