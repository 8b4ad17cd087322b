"""Files attached to a bill or purchase order (reference §4.1, §4.2; issue 21), as methods of
AcumaticaClient.

- `GET /<Entity>/<keys>?$expand=files` adds `"files": [{"id", "filename", "href", "comment"}]` to the
  record (§4.1, §4.2 `$expand`: files expand at no extra request quota). `filename` is the screen's
  title and keys, a backslash, then the name the person gave the file: only the part after the last
  backslash is the file's own name.
- `GET <endpoint>/files/<id>` serves the content (the `href`). It is read with `stream=True` and handed
  on chunk by chunk (`iter_content`): a 25 MB invoice never sits in memory whole. We build the URL from
  the id under our own endpoint rather than follow `href`, so a record can never point us elsewhere.
- A file replaced under the same name keeps its id (the sandbox models this; a new revision in the
  UI): only its content says it changed, so callers hash the stream.
Both go through the client's request loop: the connection's rate budget, the shared session and the
ApiCall audit count them like any read. Callers hold `session_scope()` around the whole read, so a
cookie session is not signed out while a stream is still being read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from .values import encode_key

FILE_KEY_SELECTS = {"Bill": ("Type", "ReferenceNbr"), "PurchaseOrder": ("Type", "OrderNbr")}


@dataclass(frozen=True)
class DocumentFile:
    id: str
    name: str  # the file's own name (after the screen-and-keys prefix)
    comment: str | None = None


def file_name_of(acumatica_filename: str) -> str:
    """`Bills and Adjustments (Bill 000123)\\invoice.pdf` → `invoice.pdf`."""
    return str(acumatica_filename or "").rsplit("\\", 1)[-1]


class FilesMixin:
    """Mixed into AcumaticaClient; relies on its request/json/session_scope."""

    def list_files(self, entity: str, keys: Iterable[Any]) -> list[DocumentFile]:
        """GET /<Entity>/<keys>?$expand=files&$select=<keys> — the files of one document (§4.1)."""
        path = f"/{entity}/" + "/".join(encode_key(k) for k in keys)
        select = ",".join(FILE_KEY_SELECTS.get(entity, ()))
        query = "$expand=files" + (f"&$select={select}" if select else "")
        with self.session_scope():
            body = self.json(self.request("GET", f"{path}?{query}")) or {}
        return [
            DocumentFile(str(f.get("id") or ""), file_name_of(f.get("filename")), f.get("comment"))
            for f in body.get("files") or []
            if f.get("id")
        ]

    def open_file(self, file_id: str) -> requests.Response:
        """GET <endpoint>/files/<id>, streamed: read it with `iter_content`, then close it."""
        return self.request("GET", f"/files/{quote(str(file_id), safe='')}", stream=True)
