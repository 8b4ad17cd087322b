"""Creating a document's task exactly once (ARCHITECTURE §6): the claim is fenced, the create carries
the identity the connector can find it by, the GID is stored only while the claim holds (an orphan of a
lost claim is closed, pointing at the winner), and an unknown outcome is reconciled (reconcile.py)
before anything is created again — or parked for a person when a candidate cannot be proven ours.

A mixin of DocumentSync (acumatica_documents.py): it uses the sync's clients, settings, lease and
bookkeeping (`_apply_locked`, `_linked`, `_audit`, `_mark`, `_record_guarded`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEntry
from integrations.base import errors
from integrations.base.deadline import attempt_deadline
from integrations.flows.documents import batch, reconcile
from integrations.flows.documents import controls as doc_controls
from integrations.flows.documents.plan import Plan
from integrations.models import RecordLink

log = logging.getLogger(__name__)

IN_FLIGHT = batch.IN_FLIGHT
OUTCOME_UNKNOWN = "create outcome unknown: reconcile before creating again"
RETRY_UNKNOWN_AFTER = 30.0
ADOPTED_CHECK = "asana:adopted:"  # dedupe key prefix of the event that re-checks an adopted task
# We never need the written task back, only Asana's time of the write (what approvals bind to).
ANSWER_FIELDS = ("name", "modified_at")


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


class ExactlyOnceCreateMixin:
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

    def _reconcile(
        self, link: RecordLink, plan: Plan, key: str, record: Any = None
    ) -> tuple[Plan, list[str]]:
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
        link.claim_token += 1  # fencing: the lost attempt, if still running, must not store over this
        link.review = {}
        self._record_guarded(link, record, {"modified_at": self._guarded_time_of(task)}, "adopted")
        self._check_adopted_task(link, task)
        from integrations.asana.shapes import task_changes

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

    def _guarded_time_of(self, task: dict[str, Any]) -> str:
        """Asana's time of the last change of a guarded figure on an adopted task: its creation, or the
        latest story that changed one of those fields since (by anyone). An approval binds only after it."""
        from integrations.flows.common import binding

        paths = set(binding.guarded_paths(self.doc.link_kind, self.flow.options))
        fields = {m.field_gid for m in self.settings.mappings if m.source_path in paths}
        latest = task.get("created_at") or ""
        for story in self.asana.iter_stories(task["gid"]):
            if str((story.get("custom_field") or {}).get("gid") or "") in fields:
                latest = max(latest, story.get("created_at") or "")
        return latest

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
        from integrations.flows.common.task_events import store_task_change, webhook_projects

        if self.settings.project_gid not in webhook_projects(self.tenant):
            return
        event_id = store_task_change(
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
        from integrations.flows.common import task_events

        ids, self._adopted_checks = self._adopted_checks, []
        if ids:
            stored = InboundEvent.objects.filter(pk__in=ids, dedupe_key__startswith=ADOPTED_CHECK)
            for event_id in stored.values_list("pk", flat=True):
                task_events.enqueue_asana_event(event_id)

    def _create(
        self,
        link_pk: int,
        key: str,
        plan: Plan,
        record: Any,
        event: Any,
        *,
        token: int,
        link: RecordLink | None = None,
    ) -> Outcome:
        payload = plan.payload
        if link is None:
            link = RecordLink.objects.get(pk=link_pk)
        extra = None
        if "external" in payload:
            extra = {"external": {"gid": reconcile.external_gid(self.settings, key, link.generation)}}
        # The identity line proves whose task this is if the answer is lost (reconcile.py). It is
        # written at create only: once the GID is stored, nothing needs it.
        marker = reconcile.identity_marker(self.tenant.slug, key, link.generation, link.pk)
        notes = f"{payload['notes']}\n\n{marker}" if payload.get("notes") else marker
        with_section = bool(self.settings.section_gid) and self.flow.options.get("section_at_create", True)
        # Finance controls: a likely duplicate is looked for before the create (it still gets its task).
        duplicates = doc_controls.likely_duplicates(self, record) if record is not None else []
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
            return self._create_failed(link_pk, key, plan, record, event, exc, token=token)
        # The task's GID and the audit entry of its creation commit together: a worker dying after this
        # leaves no document with a task and no trace of how it got it.
        audit = lambda linked: self._audit(linked, plan, AuditEntry.Status.SUCCEEDED, record, event)  # noqa: E731
        values, when = self._guarded_of(link, record, task)
        link = self.store_created(
            link_pk, task["gid"], plan, token=token, also=audit, link=link, guarded=(values, when)
        )
        if link is None:
            return self._orphan(link_pk, key, plan, task, record, event)
        if values and (link.guarded_values != values or link.guarded_written_at is None):
            self._record_guarded(link, record, task, "create")
        out_notes = doc_controls.after_create(self, link, record, duplicates) if record is not None else []
        if self.settings.section_gid and not with_section:
            # Operator chose section_at_create=false: place the task with a second call.
            try:
                self.asana.move_to_section(task["gid"], self.settings.section_gid)
            except errors.ConnectorError as exc:
                out_notes.append(f"task created but not moved to section {self.settings.section_gid}: {exc}")
                moved = Plan("update", key, reason="placing the new task in its section")
                self._audit(link, moved, AuditEntry.Status.FAILED, record, event, notes=out_notes)
        return Outcome(key, plan, AuditEntry.Status.SUCCEEDED, link_pk, task["gid"], notes=out_notes)

    def store_created(
        self,
        link_pk: int,
        task_gid: str,
        plan: Plan,
        *,
        token: int,
        also: Any = None,
        link: RecordLink | None = None,
        guarded: tuple[dict[str, Any], Any] = ({}, None),
    ) -> RecordLink | None:
        """Store the new task's GID at once — only while our claim holds (fencing): None when another
        worker took the link over meanwhile (our lease ran out) or stored a task first. `also(link)` runs
        in the same transaction (the creation's audit entry). Given the claimed `link`, one fenced
        UPDATE does it, with the `guarded` values of a first write (batch.py); anything unusual comes
        here, to the locked read, which decides as before."""
        if link is not None:
            values, when = guarded
            stored, _recorded = batch.store_fenced(
                self, link, task_gid, plan, token=token, values=values, asana_time=when, audit=also
            )
            if stored:
                return link
        with transaction.atomic():
            link = RecordLink.objects.select_for_update().get(pk=link_pk)
            if link.asana_task_gid == task_gid:
                return link  # another attempt adopted this very task meanwhile: it is linked
            if link.claim_token != token or link.asana_task_gid:
                return None
            link.asana_task_gid = task_gid
            link.attempt_started_at = None
            try:
                with transaction.atomic():
                    self._linked(link, plan)
            except IntegrityError:  # the task already belongs to another link (never shared)
                return None
            if also is not None:
                also(link)
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

    def _create_failed(
        self,
        link_pk: int,
        key: str,
        plan: Plan,
        record: Any,
        event: Any,
        exc: errors.ConnectorError,
        *,
        token: int,
    ) -> Outcome:
        if exc.outcome_unknown:
            self._mark(link_pk, state=None, reason=OUTCOME_UNKNOWN, own_claim=True)
            # GET /tasks is read-your-write: look once now, before handing the retry to the queue.
            with transaction.atomic():
                link = RecordLink.objects.select_for_update().get(pk=link_pk)
                adopted, notes = self._reconcile(link, plan, key, record)
                if link.asana_task_gid or link.state == RecordLink.State.NEEDS_PERSON:
                    return self._apply_locked(link, adopted, record, event, [str(exc), *notes])
            raise errors.Unavailable(
                f"{key}: {exc}; no task found yet, will reconcile again before creating",
                system="asana",
                retry_after=RETRY_UNKNOWN_AFTER,
            ) from exc
        # Not applied (429, refused before sending, or refused by Asana): release our claim — the next
        # attempt creates without reconciling, since this one is known to have made nothing.
        verb = "not applied" if exc.retryable else "refused"
        self._mark(link_pk, state=None, reason=f"create {verb}: {exc}", own_claim=True)
        RecordLink.objects.filter(pk=link_pk, claim_token=token).update(
            attempt_started_at=None, attempt_asana_started_at=None
        )
        raise exc
