"""Invoice files onto the task (issue 21): the files attached to a bill or PO in Acumatica are put on
its Asana task, once each, after the task is created or updated, and whenever the one document is
synced on its own (a replay, a push): that is how a file added or replaced without a change to the
document is found. A poll page's re-read of a version already on the task reads no file (sync.py).

- **Once per file and content.** Each upload is a `TaskAttachment` row keyed by (link, Acumatica file
  id, SHA-256 of the content). A known file id is read again and hashed (streamed, nothing kept): the
  same hash uploads nothing; a new hash is a replaced file: a new attachment is uploaded, the old one
  is left on the task, its row marked `replaced` and a comment on the task says so.
- **Limits per flow** (`Flow.options["attachments"]`, validated by `integrations.validators`):
  `enabled`, `max_bytes` (at most Asana's 100 MB), `allowed_types`. A file over the size or of another
  type is skipped with the reason on its row and in the audit trail; the task is never held back.
- **Streamed end to end.** Acumatica's answer is read with `iter_content` into the multipart body of
  Asana's upload, hashed and counted on the way: memory stays flat whatever the file's size.
- **Writes like every write.** Both requests go through the vendors' clients (rate budgets, ApiCall
  rows). A 429 is retried by HttpClient with a fresh stream from Acumatica. An upload whose answer is
  lost is never sent again blindly: its `uploading` row is the claim, and the task's attachments are
  listed, matched by name and size (and not already ours), before anything is uploaded again.
Each upload, skip and replacement is an AuditEntry (`upload_attachment`).
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.models import AuditEntry
from audit.recorder import record_entry
from integrations.base import errors
from integrations.models import RecordLink, TaskAttachment
from integrations.validators import attachment_options

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
# A claim older than this belongs to a worker that died mid-upload: it is reconciled and taken over.
UPLOAD_LEASE = timedelta(minutes=15)
ENTITIES = {RecordLink.Kind.BILL: "Bill", RecordLink.Kind.PURCHASE_ORDER: "PurchaseOrder"}


class FileTooLarge(Exception):
    """The stream passed the flow's limit without a Content-Length saying so beforehand."""


class HashingChunks:
    """Acumatica's streamed answer as chunks, hashed and counted as they pass; closed at the end."""

    def __init__(self, response: Any, limit: int):
        self.response = response
        self.limit = limit
        self.sha = hashlib.sha256()
        self.size = 0
        self.complete = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.response.iter_content(CHUNK_BYTES):
                self.size += len(chunk)
                if self.size > self.limit:
                    raise FileTooLarge(f"larger than {self.limit} bytes")
                self.sha.update(chunk)
                yield chunk
            self.complete = True
        finally:
            self.response.close()

    def drain(self) -> str:
        for _chunk in self:
            pass
        return self.sha.hexdigest()


@dataclass
class AttachmentReport:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)


def _media_type(response: Any, name: str) -> str:
    header = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if header and header != "application/octet-stream":
        return header
    return (mimetypes.guess_type(name)[0] or header or "application/octet-stream").lower()


def _allowed(media_type: str, allowed: list[str]) -> bool:
    major = media_type.split("/")[0]
    return any(t == media_type or t == f"{major}/*" for t in allowed)


class TaskAttachments:
    """One document's files onto its task. `sync()` is the unit of work (sync.py calls it)."""

    def __init__(self, flow: Any, link: RecordLink, *, acumatica: Any, asana: Any, actor: str = "system"):
        self.flow = flow
        self.link = link
        self.acumatica = acumatica
        self.asana = asana
        self.actor = actor
        self.options = attachment_options(flow.options)
        self.report = AttachmentReport()

    def sync(self) -> AttachmentReport:
        link = self.link
        entity = ENTITIES.get(link.kind)
        if not self.options["enabled"] or not link.asana_task_gid or entity is None:
            return self.report
        with self.acumatica.session_scope():
            for file in self.acumatica.list_files(entity, (link.acumatica_type, link.acumatica_ref)):
                self._one(file)
        return self.report

    # ---- one file ------------------------------------------------------------------------------------
    def _one(self, file: Any) -> None:
        rows = list(TaskAttachment.objects.filter(link=self.link, file_id=file.id))
        pending = next((r for r in rows if r.state == TaskAttachment.State.UPLOADING), None)
        if pending is not None and self._in_flight(pending):
            self.report.in_flight.append(file.name)  # another worker's upload: it finishes it
            return
        if pending is not None and self._reconcile(pending, file):
            return
        response = self.acumatica.open_file(file.id)
        media_type = _media_type(response, file.name)
        length = response.headers.get("Content-Length")
        size = int(length) if length and length.isdigit() else None
        reason = ""
        if not _allowed(media_type, self.options["allowed_types"]):
            reason = f"type {media_type} is not among the flow's allowed types"
        elif size is not None and size > self.options["max_bytes"]:
            reason = f"{size} bytes is over the flow's limit of {self.options['max_bytes']} bytes"
        if reason:
            response.close()
            self._skip(file, media_type, size, reason, rows)
            return
        uploaded = [r for r in rows if r.state == TaskAttachment.State.UPLOADED]
        if uploaded and pending is None:
            chunks = HashingChunks(response, self.options["max_bytes"])
            try:
                digest = chunks.drain()
            except FileTooLarge as exc:
                self._skip(file, media_type, None, f"over the flow's limit ({exc})", rows)
                return
            if any(r.sha256 == digest for r in uploaded):
                self.report.unchanged.append(file.name)
                return
            earlier = next(
                (r for r in rows if r.state == TaskAttachment.State.REPLACED and r.sha256 == digest), None
            )
            if earlier is not None:  # put back to a version the task still holds: nothing to upload
                self._reverted(earlier, uploaded)
                return
            response = None  # spent on the hash: the upload reads the file again
        self._upload(file, media_type, size, response, replacing=uploaded)

    def _upload(self, file: Any, media_type: str, size: int | None, first: Any, *, replacing: list) -> None:
        row = self._claim(file, media_type, size)
        if row is None:
            if first is not None:
                first.close()
            self.report.in_flight.append(file.name)
            return
        streams: list[HashingChunks] = []
        spare = [first] if first is not None else []

        def open_chunks() -> HashingChunks:
            response = spare.pop() if spare else self.acumatica.open_file(file.id)
            streams.append(HashingChunks(response, self.options["max_bytes"]))
            return streams[-1]

        try:
            answer = self.asana.upload_attachment(
                self.link.asana_task_gid,
                file_name=file.name,
                content_type=media_type,
                open_chunks=open_chunks,
                size=size,
            )
        except FileTooLarge as exc:
            row.delete()
            self._skip(file, media_type, None, f"over the flow's limit ({exc})", [])
            return
        except errors.ConnectorError as exc:
            row.attempt_started_at = None  # this attempt has ended (its outcome maybe unknown)
            row.save(update_fields=["attempt_started_at", "updated_at"])
            last = streams[-1] if streams else None
            if last is not None and last.complete:
                row.sha256, row.size = last.sha.hexdigest(), last.size
                row.save(update_fields=["sha256", "size", "updated_at"])
            if exc.outcome_unknown and self._reconcile(row, file):
                return
            if isinstance(exc, errors.PermanentError) and not exc.outcome_unknown:
                row.delete()
                self._skip(file, media_type, size, f"Asana refused the upload: {exc}", [])
                return
            self._audit(row, AuditEntry.Status.RETRYING, error=exc)
            raise
        stream = streams[-1]
        self._uploaded(row, str(answer.get("gid") or ""), stream.sha.hexdigest(), stream.size, replacing)

    def _reverted(self, earlier: Any, current: list) -> None:
        with transaction.atomic():
            for row in current:
                row.state, row.reason = (
                    TaskAttachment.State.REPLACED,
                    "replaced in Acumatica by an earlier version",
                )
                row.save(update_fields=["state", "reason", "updated_at"])
            earlier.state, earlier.reason = (
                TaskAttachment.State.UPLOADED,
                "Acumatica holds this version again",
            )
            earlier.save(update_fields=["state", "reason", "updated_at"])
        self.report.unchanged.append(earlier.file_name)
        self._audit(earlier, AuditEntry.Status.SUCCEEDED)

    def _in_flight(self, row: Any) -> bool:
        started = row.attempt_started_at
        return started is not None and timezone.now() - started < UPLOAD_LEASE

    def _claim(self, file: Any, media_type: str, size: int | None) -> Any:
        """The `uploading` row for this file, claimed under the link's row lock; None while another
        worker's claim is within its lease. A claim whose attempt ended (`attempt_started_at` cleared)
        or whose worker died (lease passed) is taken over: it was reconciled before we got here."""
        with transaction.atomic():
            RecordLink.objects.select_for_update().filter(pk=self.link.pk).first()
            row = TaskAttachment.objects.filter(
                link=self.link, file_id=file.id, state=TaskAttachment.State.UPLOADING
            ).first()
            if row is not None and self._in_flight(row):
                return None
            row = row or TaskAttachment(link=self.link, file_id=file.id, file_name=file.name[:255])
            row.content_type, row.size, row.attempt_started_at = media_type, size, timezone.now()
            row.save()
            return row

    def _uploaded(
        self, row: Any, gid: str, digest: str, size: int, replacing: list, reason: str = ""
    ) -> None:
        with transaction.atomic():
            twin = TaskAttachment.objects.filter(link=self.link, file_id=row.file_id, sha256=digest).exclude(
                pk=row.pk
            )
            twin.update(sha256="")  # (only a skipped row can share it: its hash never mattered)
            row.sha256, row.size, row.asana_attachment_gid = digest, size, gid
            row.state, row.reason = TaskAttachment.State.UPLOADED, reason
            row.save()
            for old in replacing:
                old.state = TaskAttachment.State.REPLACED
                old.reason = f"replaced in Acumatica by a new version (attachment {gid})"
                old.save(update_fields=["state", "reason", "updated_at"])
        self.report.uploaded.append(row.file_name)
        self._audit(row, AuditEntry.Status.SUCCEEDED)
        if replacing:
            self.report.replaced.append(row.file_name)
            kept = ", ".join(o.asana_attachment_gid for o in replacing if o.asana_attachment_gid)
            self.asana.add_comment(
                self.link.asana_task_gid,
                f"The file {row.file_name} was replaced in Acumatica: the new version is attached; "
                f"the earlier attachment ({kept}) is left on the task (ml-connector).",
            )

    def _reconcile(self, row: Any, file: Any) -> bool:
        """A prior upload's answer was lost: is it on the task? By name and size, never one we hold."""
        ours = set(
            TaskAttachment.objects.filter(link=self.link)
            .exclude(asana_attachment_gid="")
            .values_list("asana_attachment_gid", flat=True)
        )
        for item in self.asana.iter_attachments(self.link.asana_task_gid):
            same_size = row.size is None or item.get("size") in (None, row.size)
            if item.get("name") == file.name and same_size and str(item.get("gid")) not in ours:
                replacing = list(
                    TaskAttachment.objects.filter(
                        link=self.link, file_id=file.id, state=TaskAttachment.State.UPLOADED
                    )
                )
                if not row.sha256:  # the stream that made it was never finished here: hash it now
                    with self.acumatica.session_scope():
                        row.sha256 = HashingChunks(
                            self.acumatica.open_file(file.id), self.options["max_bytes"]
                        ).drain()
                found = "adopted after a lost answer (found on the task by name and size)"
                size = item.get("size") or row.size
                self._uploaded(row, str(item["gid"]), row.sha256, size, replacing, found)
                return True
        return False

    def _skip(self, file: Any, media_type: str, size: int | None, reason: str, rows: list) -> None:
        self.report.skipped.append(f"{file.name}: {reason}")
        if any(r.state == TaskAttachment.State.SKIPPED and r.reason == reason for r in rows):
            return  # said once already
        row = TaskAttachment.objects.create(
            link=self.link,
            file_id=file.id,
            file_name=file.name[:255],
            content_type=media_type,
            size=size,
            state=TaskAttachment.State.SKIPPED,
            reason=reason,
        )
        self._audit(row, AuditEntry.Status.SKIPPED)

    def _audit(self, row: Any, status: str, *, error: Exception | None = None) -> None:
        link = self.link
        record_entry(
            tenant=link.tenant,
            operation="upload_attachment",
            status=status,
            flow=self.flow,
            record_link=link,
            actor=self.actor,
            record_key=f"{ENTITIES.get(link.kind, link.kind)}:{link.acumatica_type}/{link.acumatica_ref}",
            idempotency_key=f"{link.tenant.slug}:attachment:{link.pk}:{row.file_id}:{row.sha256}",
            payload={
                "file_id": row.file_id,
                "file_name": row.file_name,
                "size": row.size,
                "sha256": row.sha256,
                "content_type": row.content_type,
                "asana_attachment_gid": row.asana_attachment_gid,
                "task_gid": link.asana_task_gid,
            },
            error="; ".join(x for x in (row.reason, str(error) if error else "") if x),
            error_class=type(error).__name__ if error else "",
        )
