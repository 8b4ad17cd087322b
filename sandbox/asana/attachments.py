"""Attachments on tasks (issue 21): `POST /attachments` (multipart/form-data, `parent` + `file`) and
`GET /attachments?parent=` / `GET /attachments/{gid}` (OAS createAttachmentForObject,
getAttachmentsForObject, getAttachment).

- The 100 MB limit the spec states is enforced (`attachment_max_bytes`, smaller in a test): a larger
  file is refused with 400 and nothing is stored (the message is UNVERIFIED wording).
- A `filename` sent URL-encoded (non-ASCII names, as the spec asks) is stored decoded; `filename*`
  wins when present.
- An upload is a write: it counts against the token's rate limit and can be hit by the faults (a 429
  before it is applied; `drop_after_write`: stored, answer lost), like every other write.
- `attachments_of(task_gid)` (a control) lists what a task holds, with each file's SHA-256.
"""

from __future__ import annotations

import hashlib
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import unquote

from ..core import SimRequest, SimResponse, control
from .helpers import err

ASANA_ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024


class AttachmentsMixin:
    attachment_max_bytes = ASANA_ATTACHMENT_MAX_BYTES

    def _init_attachments(self) -> None:
        self.attachments: dict[str, dict[str, Any]] = {}
        self.attachment_contents: dict[str, bytes] = {}

    def _attachment_routes(self) -> None:
        g = r"(?P<gid>\d+)"
        self.add_route("POST", r"/attachments", self.h_create_attachment)
        self.add_route("GET", r"/attachments", self.h_attachments)
        self.add_route("GET", rf"/attachments/{g}", self.h_attachment)

    @staticmethod
    def _multipart(req: SimRequest) -> dict[str, tuple[str | None, str | None, bytes]]:
        """name -> (filename, content type, bytes) of each part of a multipart/form-data body."""
        ctype = req.headers.get("Content-Type") or ""
        if not ctype.lower().startswith("multipart/form-data") or "boundary=" not in ctype:
            raise err(400, "file: Missing input (expected multipart/form-data)")
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
        parts: dict[str, tuple[str | None, str | None, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            if filename is not None and part.get_param("filename*", header="content-disposition") is None:
                filename = unquote(filename)
            payload = part.get_payload(decode=True) or b""
            parts[str(name)] = (filename, part.get_content_type() if filename else None, payload)
        return parts

    def h_create_attachment(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        parts = self._multipart(req)
        parent = parts.get("parent", (None, None, b""))[2].decode().strip()
        if not parent:
            raise err(400, "parent: Missing input")
        task = self._get(self.tasks, "task", parent)
        self._require_member(task["workspace"], me)
        if "file" not in parts or parts["file"][0] is None:
            raise err(400, "file: Missing input")
        filename, _ctype, content = parts["file"]
        if len(content) > self.attachment_max_bytes:
            raise err(400, f"file: File is too large (the limit is {self.attachment_max_bytes} bytes)")
        gid = self.new_gid()
        self.attachments[gid] = {
            "gid": gid,
            "resource_type": "attachment",
            "name": filename,
            "resource_subtype": "asana",
            "host": "asana",
            "size": len(content),
            "created_at": self.now_iso(),
            "parent": {"gid": parent, "resource_type": "task", "name": task["name"]},
            "download_url": f"https://asana-user-private.example/assets/{gid}",
            "permanent_url": f"https://app.asana.com/app/asana/-/get_asset?asset_id={gid}",
            "view_url": f"https://app.asana.com/app/asana/-/view_asset?asset_id={gid}",
            "created_by": me,
        }
        self.attachment_contents[gid] = content
        task["modified_at"] = self.now_iso()
        return self._one(req, self._attachment_view(gid))

    def _attachment_view(self, gid: str) -> dict[str, Any]:
        return {k: v for k, v in self.attachments[gid].items() if k != "created_by"}

    def h_attachments(self, req: SimRequest) -> SimResponse:
        me = self._user_of(req)
        parent = req.arg("parent")
        if not parent:
            raise err(400, "parent: Missing input")
        task = self._get(self.tasks, "task", parent)
        self._require_member(task["workspace"], me)
        items = [
            self._attachment_view(g) for g, a in self.attachments.items() if a["parent"]["gid"] == parent
        ]
        return self._list(req, items, "attachment")

    def h_attachment(self, req: SimRequest, gid: str) -> SimResponse:
        self._user_of(req)
        self._get(self.attachments, "attachment", gid)
        return self._one(req, self._attachment_view(gid))

    @control
    def attachments_of(self, task_gid: str) -> list[dict[str, Any]]:
        """What a task holds: name, size and SHA-256 of each attachment, oldest first."""
        return [
            {
                "gid": g,
                "name": a["name"],
                "size": a["size"],
                "sha256": hashlib.sha256(self.attachment_contents[g]).hexdigest(),
            }
            for g, a in self.attachments.items()
            if a["parent"]["gid"] == str(task_gid)
        ]

    @control
    def set_attachment_limit(self, max_bytes: int) -> int:
        """Lower (or restore) the per-file limit Asana enforces, so a test need not send 100 MB."""
        self.attachment_max_bytes = int(max_bytes)
        return self.attachment_max_bytes
