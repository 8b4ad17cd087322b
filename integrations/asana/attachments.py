"""Asana attachments (issue 21), as methods of AsanaClient.

- `POST /attachments` — [OAS] createAttachmentForObject: `multipart/form-data` with `parent` (the task
  gid) and `file`. Asana enforces 100 MB per file on this endpoint; the answer is 200 with the compact
  attachment. A non-ASCII file name is sent URL-encoded in `filename` and as `filename*=UTF-8''…`, as
  the spec's description asks.
- `GET /attachments?parent=<task>` — [OAS] getAttachmentsForObject: a task's attachments (paged),
  with `name` and `size` on request: how a lost upload's answer is reconciled.

The body is streamed (`MultipartUpload`): the file's chunks go straight from the caller's iterator
into the socket, with a Content-Length when the size is known. A POST is never replayed blindly
(HttpClient): after a 429 the request is sent again with a fresh body from `open_chunks()`; after a
lost answer the caller lists the task's attachments before uploading again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote

ATTACHMENT_FIELDS = ("name", "size", "created_at", "resource_subtype", "host")


class MultipartUpload:
    """A `multipart/form-data` body for `requests`, produced chunk by chunk.

    `requests` sends an iterable body as it iterates it; it reads `len` (when the size is known) for
    the Content-Length, else sends it chunked."""

    def __init__(
        self,
        boundary: str,
        fields: dict[str, str],
        file_name: str,
        content_type: str,
        chunks: Iterable[bytes],
        size: int | None = None,
    ):
        ascii_name = file_name if file_name.isascii() else quote(file_name)
        ascii_name = ascii_name.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        )
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{ascii_name}"; '
            f"filename*=UTF-8''{quote(file_name)}\r\nContent-Type: {content_type}\r\n\r\n"
        )
        self._head = head.encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._chunks = chunks
        self.description = f"multipart upload of {file_name!r}" + (f", {size} bytes" if size else "")
        if size is not None:
            self.len = len(self._head) + size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        for chunk in self._chunks:
            if chunk:
                yield chunk
        yield self._tail


class AttachmentsMixin:
    """Methods of AsanaClient (integrations/asana/client.py): they call its `request`, `json`,
    `iter_pages`."""

    def upload_attachment(
        self,
        task_gid: str,
        *,
        file_name: str,
        content_type: str,
        open_chunks: Callable[[], Iterable[bytes]],
        size: int | None = None,
        fields: Iterable[str] = ATTACHMENT_FIELDS,
    ) -> dict[str, Any]:
        """POST /attachments (multipart, streamed). `open_chunks` is called once per attempt."""
        boundary = "ml-connector-" + secrets.token_hex(12)

        def body() -> MultipartUpload:
            return MultipartUpload(
                boundary, {"parent": str(task_gid)}, file_name, content_type, open_chunks(), size
            )

        body.description = f"multipart upload of {file_name!r} to task {task_gid}"  # type: ignore[attr-defined]
        response = self.request(
            "POST",
            "/attachments",
            params={"opt_fields": ",".join(fields)},
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        payload = self.json(response) or {}
        return payload.get("data") or {}

    def iter_attachments(
        self, task_gid: str, *, fields: Iterable[str] = ATTACHMENT_FIELDS
    ) -> Iterator[dict[str, Any]]:
        """GET /attachments?parent=<task> — every attachment on the task."""
        return self.iter_pages("/attachments", fields=fields, params={"parent": str(task_gid)})
