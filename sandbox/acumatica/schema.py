"""`<endpoint>/swagger.json` and `<Entity>/$adHocSchema` (reference §1.1).

swagger.json is the vendor's own export (`shared/specs/acumatica_default_24.200.001.json`, see
SPEC_GAPS SBX-ACU-SWAGGER) with `servers` pointing at this instance, as an instance exports its own URL.
$adHocSchema answers the entity's contract fields (empty values), the fields of its views under
`custom` with `type`/`viewName`/`fieldName`, and `_workflowActions`: the contract's actions for the
entity (the spec's `POST /<Entity>/<Action>` paths) plus the workflow actions the form offers (§5.4).
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from ..contract import specs_dir
from ..core import SimRequest, SimResponse
from .common import SPEC_VERSION, VERSIONS, no_resource
from .entities import VIEW_FIELDS, custom_type

SPEC_FILE = f"acumatica_default_{SPEC_VERSION}.json"
# Workflow (graph) actions callable by name in contract v4 (§5.1, §5.4; names UNVERIFIED there).
WORKFLOW_ACTIONS = {
    "Bill": ("Approve", "Reject", "Hold", "RemoveHold"),
    "PurchaseOrder": ("Approve", "Reject", "Hold", "RemoveHold"),
}


@functools.lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    return json.loads((specs_dir() / SPEC_FILE).read_text())


def contract_actions(entity: str) -> list[str]:
    prefix = f"/{entity}/"
    return sorted(
        p[len(prefix) :]
        for p, ops in spec()["paths"].items()
        if p.startswith(prefix) and "post" in ops and "{" not in p and "/" not in p[len(prefix) :]
    )


def entity_fields(entity: str) -> dict[str, Any]:
    """The entity's properties in the spec (its `allOf` part after `Entity`)."""
    schema = spec()["components"]["schemas"][entity]
    props: dict[str, Any] = {}
    for part in schema.get("allOf", [schema]):
        props.update(part.get("properties") or {})
    return props


class SchemaMixin:
    def _swagger(self, req: SimRequest, ep: str, ver: str) -> SimResponse:
        if req.arg("company") != self.tenant:
            self._principal(req)  # without `company`: the signed-in tenant's view (§1.1)
        if ep != "Default" or ver not in VERSIONS:
            raise no_resource(req.url)
        doc = copy.deepcopy(spec())
        doc["servers"] = [{"url": f"{self.base_url}/entity/{ep}/{ver}"}]
        doc.setdefault("info", {})["version"] = ver
        return SimResponse.json(doc)

    def _ad_hoc_schema(self, req: SimRequest, ep: str, ver: str, entity: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        out: dict[str, Any] = {"id": "00000000-0000-0000-0000-000000000000", "rowNumber": 1, "note": {}}
        for name, prop in entity_fields(entity).items():
            if name in ("note", "custom", "files"):
                continue
            out[name] = [] if prop.get("type") == "array" else {}
        custom: dict[str, Any] = {}
        for view, fields in VIEW_FIELDS.get(entity, {}).items():
            for dac_field, contract_field in fields.items():
                sample = self._sample_value(entity, contract_field)
                custom.setdefault(view, {})[dac_field] = {
                    "type": custom_type(sample),
                    "viewName": view,
                    "fieldName": dac_field,
                }
        for rec in self.records[entity].values():
            for view, fields in (rec.get("custom") or {}).items():
                for name, value in fields.items():
                    custom.setdefault(view, {})[name] = {
                        "type": custom_type(value),
                        "viewName": view,
                        "fieldName": name,
                    }
        out["custom"] = custom
        actions = contract_actions(entity) + list(WORKFLOW_ACTIONS.get(entity, ()))
        withdrawn = getattr(self, "withdrawn_actions", set())
        out["_workflowActions"] = [
            {"name": name, "parameters": []} for name in actions if (entity, name) not in withdrawn
        ]
        return SimResponse.json(out)

    def _sample_value(self, entity: str, field: str) -> Any:
        for rec in self.records[entity].values():
            if rec.get(field) is not None:
                return rec[field]
        return ""
