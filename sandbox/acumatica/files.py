"""Files attached to documents (reference §1.1, §4.1, §4.3; issue 21).

- `PUT <endpoint>/<Entity>/<keys>/files/<filename>` with the raw bytes attaches a file: 204 with
  `Location` = the URL that serves it (OAS24 `PutFile_204`). The same name again replaces the content
  (a new revision under the same file id).
- `$expand=files` on a GET adds `"files": [{"id", "filename", "href", "comment"}]` (§4.1).
- `GET <endpoint>/files/<id>` serves the bytes (the `href`), with the type guessed from the name.
- Attaching a file does not change the document (no LastModifiedDateTime bump, no push): files live
  beside the record (UNVERIFIED for the API; in the UI a file is attached without editing the form).
- Controls: `person_attach_file(kind, type, nbr, filename, content_base64, comment=None)`,
  `person_remove_file(file_id)`.

The `filename` shown in `files` is "<screen title> (<keys>)\\<name>" (UNVERIFIED format).
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import uuid
from typing import Any
from urllib.parse import unquote

from ..core import SimError, SimRequest, SimResponse, control
from .common import ENTITY_KEYS, SPEC_VERSION, http_error, no_entity

SCREEN_TITLES = {"Bill": "Bills and Adjustments", "PurchaseOrder": "Purchase Orders"}
KINDS = {"bill": "Bill", "purchase_order": "PurchaseOrder", "Bill": "Bill", "PurchaseOrder": "PurchaseOrder"}


class FilesMixin:
    def _init_files(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}  # file id -> {owner, name, content, comment, revision}

    def _attach(self, entity: str, rec: dict, name: str, content: bytes, comment: str | None) -> dict:
        if not name or "/" in name or "\\" in name:
            raise http_error("The file name is not valid.", status=400)
        for info in self.files.values():
            if info["owner"] == rec["id"] and info["name"] == name:
                info.update(content=content, comment=comment, revision=info["revision"] + 1)
                return info
        info = {
            "id": str(uuid.uuid4()),
            "owner": rec["id"],
            "entity": entity,
            "name": name,
            "content": content,
            "comment": comment,
            "revision": 1,
        }
        self.files[info["id"]] = info
        return info

    def _drop_files(self, rec: dict) -> None:
        for file_id in [f for f, info in self.files.items() if info["owner"] == rec["id"]]:
            del self.files[file_id]

    def _file_href(self, file_id: str, *, absolute: bool = False) -> str:
        path = f"{self.base_path}/entity/Default/{SPEC_VERSION}/files/{file_id}"
        return self.base_url[: len(self.base_url) - len(self.base_path)] + path if absolute else path

    def _file_links(self, entity: str, rec: dict) -> list[dict[str, Any]]:
        keys = " ".join(str(rec[k]) for k in ENTITY_KEYS[entity])
        title = SCREEN_TITLES.get(entity, entity)
        return [
            {
                "id": info["id"],
                "filename": f"{title} ({keys})\\{info['name']}",
                "href": self._file_href(info["id"], absolute=True),
                "comment": info["comment"],
            }
            for info in self.files.values()
            if info["owner"] == rec["id"]
        ]

    # ---- routes ---------------------------------------------------------------------------------
    def _put_file(
        self, req: SimRequest, ep: str, ver: str, entity: str, keys: str, filename: str
    ) -> SimResponse:
        self._endpoint(req, ep, ver)
        rec = self._find(entity, [unquote(k) for k in keys.split("/")])
        if rec is None:
            raise no_entity()
        info = self._attach(entity, rec, unquote(filename), req.body, req.headers.get("PX-CbFileComment"))
        return SimResponse.empty(204, {"Location": self._file_href(info["id"], absolute=True)})

    def _get_file(self, req: SimRequest, ep: str, ver: str, file_id: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        info = self.files.get(file_id.lower())
        if info is None:
            raise no_entity()
        kind = mimetypes.guess_type(info["name"])[0] or "application/octet-stream"
        return SimResponse(
            200, info["content"], {"Content-Type": kind, "Content-Length": str(len(info["content"]))}
        )

    # ---- a person ---------------------------------------------------------------------------------
    @control
    def person_attach_file(
        self,
        kind: str,
        type: str,  # noqa: A002
        nbr: str,
        filename: str,
        content_base64: str,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """A person attaches (or replaces, same name) a file on a bill or purchase order's form."""
        entity = KINDS[kind]
        rec = self.records[entity].get((type, nbr))
        if rec is None:
            raise SimError(404, {"message": f"no {entity} {type} {nbr}"})
        info = self._attach(entity, rec, filename, base64.b64decode(content_base64), comment)
        return {
            "id": info["id"],
            "revision": info["revision"],
            "size": len(info["content"]),
            "sha256": hashlib.sha256(info["content"]).hexdigest(),
        }

    @control
    def person_remove_file(self, file_id: str) -> bool:
        return self.files.pop(file_id, None) is not None
