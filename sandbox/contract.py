"""Contract checks: our Acumatica and Asana HTTP traffic against the vendors' OpenAPI specs.

Every request our clients send in the test suite and every response our sandbox simulators return
is checked against the vendor's official OpenAPI document (path, method, parameters, body, response
status/headers/body). The sandboxes call this in strict mode; a mismatch raises ``ContractViolation``.

Usage::

    from sandbox.contract import get_contract

    asana = get_contract("asana")
    asana.validate_request("POST", "https://app.asana.com/api/1.0/tasks", headers, body_bytes)
    asana.validate_response("POST", url, request_headers, 201, response_headers, response_bytes)

    # or with `requests` objects
    asana.validate_prepared_request(prepared)          # requests.PreparedRequest
    asana.validate_exchange((prepared, response))      # (request, requests.Response)

``check_request`` / ``check_response`` return the list of problems instead of raising.

Known spec gaps live in ONE place: the ``KNOWN_GAPS`` table below (implemented by the functions it
names) and ``SPEC_GAPS.md`` beside this file (human-readable, with evidence). Checks that are
*stricter* than the specs (undeclared query parameters, unknown body properties, bodies sent to
operations that take none) are listed there too.

openapi-core is imported lazily, so this module imports without it. Parsing Asana's 3 MB YAML takes
~0.5 s, so the parsed document is cached as JSON keyed by the file's SHA-256 (see ``cache_dir``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "KNOWN_GAPS",
    "Contract",
    "ContractViolation",
    "SpecGap",
    "cache_dir",
    "get_contract",
    "specs_dir",
]

SYSTEMS = ("asana", "acumatica")
SPEC_FILES = {
    "asana": "asana_oas.yaml",
    "acumatica": "acumatica_default_24.200.001.json",
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# Bump when the normalised form written to the cache changes.
_CACHE_FORMAT = "1"


class ContractViolation(AssertionError):
    """A request or response does not match the vendor's contract."""

    def __init__(self, system: str, method: str, url: str, problems: list[str], *, kind: str = "request"):
        self.system = system
        self.method = method.upper()
        self.url = url
        self.path = urlsplit(url).path
        self.kind = kind
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{system} {kind} {self.method} {self.path} violates the contract:\n{lines}")


# --------------------------------------------------------------------------------------------------
# Where the specs and the cache live
# --------------------------------------------------------------------------------------------------


def specs_dir() -> Path:
    """``$ML_CONNECTOR_SPECS_DIR``, else ``<repo>/../shared/specs``."""
    env = os.environ.get("ML_CONNECTOR_SPECS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "specs"


def cache_dir() -> Path | None:
    """Where the parsed-spec cache goes; ``ML_CONNECTOR_CONTRACT_CACHE=off`` disables it."""
    env = os.environ.get("ML_CONNECTOR_CONTRACT_CACHE")
    if env:
        return None if env.lower() in ("0", "off", "none", "false") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ml-connector" / "contract"


# --------------------------------------------------------------------------------------------------
# Known gaps: the one table. Each entry names the function/data below that implements it.
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpecGap:
    id: str
    system: str
    summary: str
    evidence: str
    implemented_by: str


KNOWN_GAPS: tuple[SpecGap, ...] = (
    SpecGap(
        "ASANA-YAML-INT-CODES",
        "asana",
        "YAML loads response codes as integers (and would load unquoted timestamps as datetimes); "
        "mapping keys are converted to strings and timestamps stay strings before building a validator.",
        "shared/README.md; asana_oas.yaml `responses: 200:` unquoted",
        "_yaml_loader, _normalise",
    ),
    SpecGap(
        "ASANA-ENVELOPE",
        "asana",
        "Bodies do not mark the `data` envelope as required. We require POST/PUT JSON request bodies to "
        "be {'data': {...}} (plus optional 'options'), 2xx JSON responses to carry 'data', and error "
        "JSON responses to carry 'errors': [{'message': ...}].",
        "shared/README.md; reference/asana.md §2.1, §2.2, §2.4; every requestBody in asana_oas.yaml "
        "is `properties: {data: ...}` with no `required`",
        "_asana_envelope_problems",
    ),
    SpecGap(
        "ASANA-CUSTOM-FIELD-VALUES",
        "asana",
        "TaskRequestBase.custom_fields declares every value as a string; its description says a value "
        "may be a string, number, enum option GID, object or array, and null clears it.",
        "shared/README.md; asana_oas.yaml components.schemas.TaskRequestBase.custom_fields.description; "
        "tag 'Custom fields': 'Setting the custom field value to null will clear ...'",
        "_patch_asana_custom_field_values",
    ),
    SpecGap(
        "ASANA-CREATE-MEMBERSHIPS",
        "asana",
        "TaskBase.memberships is readOnly, yet the same property's description says it can be used at "
        "creation to place the task in a section ({project, section} GIDs). Request bodies may carry "
        "memberships: [{project: gid, section: gid}]; responses keep the spec's read-only shape.",
        "asana_oas.yaml components.schemas.TaskBase memberships description; reference/asana.md §4.1 "
        "(UNVERIFIED there: the client falls back to POST /sections/{gid}/addTask if Asana refuses it)",
        "_patch_asana_create_memberships",
    ),
    SpecGap(
        "ASANA-OPT-FIELDS-GID",
        "asana",
        "opt_fields enums list every optional field but not 'gid' / '<object>.gid', which are always "
        "returned and which integrators request everywhere (opt_fields=gid,name; custom_fields.gid).",
        "asana_oas.yaml opt_fields parameters (189 enums, none with gid); reference/asana.md §2.4 "
        "('The gid of included objects is always returned'; recommended custom_fields.gid,...)",
        "_patch_asana_opt_fields_gid",
    ),
    SpecGap(
        "ASANA-429",
        "asana",
        "components.responses.TooManyRequests exists but no operation references it; every operation "
        "may answer 429 with an ErrorResponse and Retry-After.",
        "asana_oas.yaml components.responses.TooManyRequests (0 references); reference/asana.md §3",
        "_patch_asana_429",
    ),
    SpecGap(
        "ASANA-SEARCH-CUSTOM-FIELD-PARAMS",
        "asana",
        "GET /workspaces/{workspace_gid}/tasks/search documents custom_fields.{gid}.<op> query filters "
        "in its description but does not declare them as parameters.",
        "asana_oas.yaml searchTasksForWorkspace description table; reference/asana.md §4.7",
        "EXTRA_QUERY_PARAMS",
    ),
    SpecGap(
        "ASANA-SEARCH-LIMIT",
        "asana",
        "GET /workspaces/{workspace_gid}/tasks/search says page sizes 'can be specified by the `limit` "
        "query parameter' (max 100) but does not declare `limit`.",
        "asana_oas.yaml searchTasksForWorkspace description ('Pagination'); reference/asana.md §4.7",
        "EXTRA_QUERY_PARAMS",
    ),
    SpecGap(
        "ASANA-SEARCH-402",
        "asana",
        "GET /workspaces/{workspace_gid}/tasks/search says a non-premium user gets '402 Payment "
        "Required' but does not list 402 among its responses.",
        "asana_oas.yaml searchTasksForWorkspace description ('Premium access'); reference/asana.md §4.7",
        "_patch_asana_search_402",
    ),
    SpecGap(
        "ASANA-SDK-QUIRKS",
        "asana",
        "Asana's official SDK (python-asana 5.x, generated from this spec) sends what the spec does not "
        "declare and the live API evidently ignores: a `{}` body with DELETE requests, `limit` on the "
        "unpaginated GET /workspaces/{gid}/users, and its opts (holding the body) as a `body` query "
        "parameter on POST /sections/{gid}/addTask. Those are accepted there only.",
        "asana 5.4.0 asana/api_client.py (DELETE body), asana/pagination/page_iterator.py (limit), "
        "asana/api/sections_api.py add_task_for_section_with_http_info (query_params = opts); "
        "tests/sandbox/test_asana_official_client.py",
        "EXTRA_QUERY_PARAMS, check_request",
    ),
    SpecGap(
        "ASANA-OAUTH-TOKEN",
        "asana",
        "POST https://app.asana.com/-/oauth_token (token exchange/refresh) is named only in "
        "securitySchemes.oauth2 and lies outside /api/1.0; a hand-written operation is allowed.",
        "asana_oas.yaml components.securitySchemes.oauth2.flows.authorizationCode.tokenUrl; "
        "reference/asana.md §1.2",
        "_asana_extra_spec",
    ),
    SpecGap(
        "ACU-SERVER-PREFIX",
        "acumatica",
        "servers[0] is the exporter's instance 'http://localhost/24r200/entity/Default/24.200.001' and "
        "paths are relative to it ('/Bill'). We map '{any instance}/entity/Default/24.200.001/<p>' onto "
        "'<p>'; the endpoint name/version are read from servers[0].",
        "acumatica_default_24.200.001.json servers; reference/acumatica.md §1.1",
        "_route_acumatica",
    ),
    SpecGap(
        "ACU-MULTI-KEY-IDS",
        "acumatica",
        "The {ids} path parameter is 'slash-delimited' key values (Bill: /Bill/Bill/000123), which an "
        "OpenAPI path template cannot express; {ids} may span several segments. /{E}/{id} (GUID) and "
        "/{E}/{ids} have the same shape; either one validating is enough.",
        "acumatica_default_24.200.001.json components.parameters.ids.description; "
        "reference/acumatica.md §3.1, §4.2",
        "MULTI_SEGMENT_PARAMS",
    ),
    SpecGap(
        "ACU-INSTANCE-ENDPOINTS",
        "acumatica",
        "POST /entity/auth/login, POST /entity/auth/logout, POST /identity/connect/token and GET /entity "
        "are instance-level (outside the endpoint spec) and absent from it; hand-written operations.",
        "no such path in acumatica_default_24.200.001.json; reference/acumatica.md §1.1, §1.2, §2.1, §2.2",
        "_acumatica_extra_spec",
    ),
    SpecGap(
        "ACU-ACTION-STATUS",
        "acumatica",
        "A 202 from an action points Location at <endpoint>/<Entity>/<Action>/status/<guid>, polled with "
        "GET until 204; the spec has no such path. Added for every action path in the spec.",
        "InvokeAction_202 Location header description; reference/acumatica.md §5.2 "
        "(CS:RESTClientTests/ActionLocationTests.cs, ApiClientExtensions.WaitActionCompletionAsync)",
        "_patch_acumatica_action_status",
    ),
    SpecGap(
        "ACU-FILE-GET",
        "acumatica",
        "`$expand=files` lists each file with an `href` of <endpoint>/files/<id>, which serves the "
        "content; the spec declares only the PUT that attaches a file. GET /files/{fileId} (uuid) is "
        "added, answering the bytes with the file's own media type.",
        "reference/acumatica.md §4.1 (`files` with `href`), §4.3 (PUT files, 204 with Location); "
        "Entity schema `files` in acumatica_default_24.200.001.json",
        "_patch_acumatica_file_get",
    ),
    SpecGap(
        "ACU-UNDECLARED-ERRORS",
        "acumatica",
        "Operations declare only 401/500 (+400/412/422 on writes), but the server also answers 403 (no "
        "rights), 404 (unknown action) and 429 (license limits, body may be plain text); added to every "
        "operation as HttpError JSON or text.",
        "reference/acumatica.md §2.4, §5.2, §6.3 (AIR operation tables list 429)",
        "_patch_acumatica_undeclared_errors",
    ),
)

# Path parameters that may span several '/'-separated segments (gap ACU-MULTI-KEY-IDS).
MULTI_SEGMENT_PARAMS: dict[str, frozenset[str]] = {"acumatica": frozenset({"ids"}), "asana": frozenset()}

# Undeclared query parameters allowed per operation (system -> (path template, method) -> regexes).
EXTRA_QUERY_PARAMS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "asana": {
        ("/workspaces/{workspace_gid}/tasks/search", "get"): (
            r"custom_fields\.\d+\.(is_set|value|starts_with|ends_with|contains|less_than|greater_than"
            r"|before|after)",
            r"limit",  # ASANA-SEARCH-LIMIT
        ),
        # ASANA-SDK-QUIRKS: the official SDK's page iterator sends `limit` on this unpaginated list, and
        # its addTask sends its `opts` (holding the body) in the query string too.
        ("/workspaces/{workspace_gid}/users", "get"): (r"limit", r"offset"),
        ("/sections/{section_gid}/addTask", "post"): (r"body",),
    },
    "acumatica": {},
}


# --------------------------------------------------------------------------------------------------
# Loading and normalising the spec files (with a JSON cache for the YAML)
# --------------------------------------------------------------------------------------------------


def _yaml_loader() -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader

    class _SpecLoader(base):  # type: ignore[misc, valid-type]
        pass

    # JSON Schema wants "2012-02-22T02:06:58.147Z" as a string, not a datetime.
    _SpecLoader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    return _SpecLoader


def _normalise(obj: Any) -> Any:
    """String mapping keys (YAML int response codes) and fresh containers (no shared YAML aliases)."""
    if isinstance(obj, dict):
        return {str(k): _normalise(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalise(v) for v in obj]
    return obj


def _load_spec_document(path: Path, timings: dict[str, float]) -> dict[str, Any]:
    t0 = time.perf_counter()
    raw = path.read_bytes()
    if path.suffix == ".json":
        doc = json.loads(raw)
        timings["parse"] = time.perf_counter() - t0
        return doc
    digest = hashlib.sha256(raw).hexdigest()
    cdir = cache_dir()
    cfile = cdir / f"{path.stem}-{digest[:20]}-v{_CACHE_FORMAT}.json" if cdir else None
    if cfile is not None and cfile.exists():
        try:
            doc = json.loads(cfile.read_bytes())
            timings["parse"] = time.perf_counter() - t0
            timings["cache_hit"] = 1.0
            return doc
        except (OSError, ValueError):
            pass
    import yaml

    doc = _normalise(yaml.load(raw, Loader=_yaml_loader()))  # noqa: S506 - safe loader subclass
    timings["parse"] = time.perf_counter() - t0
    timings["cache_hit"] = 0.0
    if cfile is not None:
        try:
            cfile.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cfile.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, separators=(",", ":"))
            os.replace(tmp, cfile)
        except OSError:
            pass
    return doc


# --------------------------------------------------------------------------------------------------
# Spec patches (each one a known gap)
# --------------------------------------------------------------------------------------------------


def _operations(doc: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            if method in HTTP_METHODS:
                yield path, method, op


def _patch_asana_custom_field_values(doc: dict[str, Any]) -> None:
    cf = doc["components"]["schemas"]["TaskRequestBase"]["allOf"][1]["properties"]["custom_fields"]
    cf["additionalProperties"] = {
        "description": "text, number, enum option GID, object, GID list (gap ASANA-CUSTOM-FIELD-VALUES)",
        "anyOf": [
            {"type": "string", "nullable": True},  # null clears the value
            {"type": "number"},
            {"type": "object"},
            {"type": "array", "items": {"type": "string"}},
        ],
    }


def _patch_asana_create_memberships(doc: dict[str, Any]) -> None:
    """Requests get a TaskBase copy whose memberships are writable {project, section} GID pairs."""
    import copy

    schemas = doc["components"]["schemas"]
    writable = copy.deepcopy(schemas["TaskBase"])
    for part in writable.get("allOf", [writable]):
        props = part.get("properties", {})
        if "memberships" in props:
            props["memberships"] = {
                "type": "array",
                "description": "project/section placement at creation (gap ASANA-CREATE-MEMBERSHIPS)",
                "items": {
                    "type": "object",
                    "properties": {"project": {"type": "string"}, "section": {"type": "string"}},
                },
            }
    schemas["TaskBaseWritableMemberships"] = writable
    for part in schemas["TaskRequestBase"]["allOf"]:
        if part.get("$ref") == "#/components/schemas/TaskBase":
            part["$ref"] = "#/components/schemas/TaskBaseWritableMemberships"


def _patch_asana_opt_fields_gid(doc: dict[str, Any]) -> None:
    """opt_fields enums list every field except ``gid``, which integrators request everywhere."""
    seen: set[int] = set()
    for _path, _method, op in _operations(doc):
        for param in op.get("parameters", []):
            if "$ref" in param or param.get("name") != "opt_fields" or id(param) in seen:
                continue
            seen.add(id(param))
            items = param.get("schema", {}).get("items", {})
            enum = items.get("enum")
            if not enum:
                continue
            objects = {e.rsplit(".", 1)[0] for e in enum if "." in e}
            extra = ["gid"] + sorted(f"{o}.gid" for o in objects | {e for e in enum if e in objects})
            items["enum"] = list(enum) + [e for e in extra if e not in enum]


def _patch_asana_429(doc: dict[str, Any]) -> None:
    for _path, _method, op in _operations(doc):
        op.setdefault("responses", {}).setdefault("429", {"$ref": "#/components/responses/TooManyRequests"})


def _patch_asana_search_402(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/workspaces/{workspace_gid}/tasks/search"]["get"]
    op.setdefault("responses", {}).setdefault("402", {"$ref": "#/components/responses/PaymentRequired"})


_ACU_ERROR_CONTENT = {
    "application/json": {"schema": {"$ref": "#/components/schemas/HttpError"}},
    "text/json": {"schema": {"$ref": "#/components/schemas/HttpError"}},
    "text/plain": {"schema": {"type": "string"}},
    "text/html": {"schema": {"type": "string"}},
}


def _patch_acumatica_undeclared_errors(doc: dict[str, Any]) -> None:
    descriptions = {
        "403": "The user has no rights to the form behind the entity.",
        "404": "No such action or record.",
        "429": "License limit (API users or requests) exceeded.",
    }
    for _path, _method, op in _operations(doc):
        responses = op.setdefault("responses", {})
        for code, text in descriptions.items():
            responses.setdefault(code, {"description": text, "content": _ACU_ERROR_CONTENT})


def _patch_acumatica_action_status(doc: dict[str, Any]) -> None:
    added: dict[str, Any] = {}
    for path, method, op in _operations(doc):
        if method != "post" or "_InvokeAction_" not in op.get("operationId", ""):
            continue
        params = [p for p in op.get("parameters", []) if p.get("$ref", "").endswith("/actionName")]
        params.append(
            {
                "name": "statusId",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
            }
        )
        responses = {code: op["responses"][code] for code in ("202", "401", "500") if code in op["responses"]}
        responses["204"] = {"description": "The operation is completed."}
        added[f"{path}/status/{{statusId}}"] = {
            "get": {
                "operationId": f"{op['operationId']}_Status",
                "x-gap": "ACU-ACTION-STATUS",
                "parameters": params,
                "responses": responses,
            }
        }
    doc["paths"].update(added)


def _patch_acumatica_file_get(doc: dict[str, Any]) -> None:
    """Gap ACU-FILE-GET: the `href` of each file in `$expand=files` is `<endpoint>/files/<id>`."""
    doc["paths"]["/files/{fileId}"] = {
        "get": {
            "operationId": "File_Get",
            "x-gap": "ACU-FILE-GET",
            "parameters": [
                {
                    "name": "fileId",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file's content.",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "401": {"description": "Not signed in."},
                "500": {"description": "Server error.", "content": _ACU_ERROR_CONTENT},
            },
        }
    }


_SPEC_PATCHES = {
    "asana": (
        _patch_asana_custom_field_values,
        _patch_asana_create_memberships,
        _patch_asana_opt_fields_gid,
        _patch_asana_429,
        _patch_asana_search_402,
    ),
    "acumatica": (
        _patch_acumatica_action_status,
        _patch_acumatica_file_get,
        _patch_acumatica_undeclared_errors,
    ),
}


# --------------------------------------------------------------------------------------------------
# Hand-written operations for endpoints the specs do not describe (allow-list with schemas)
# --------------------------------------------------------------------------------------------------


def _asana_extra_spec(vendor: Mapping[str, Any]) -> dict[str, Any]:
    flows = vendor["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]
    token_url = urlsplit(flows["tokenUrl"])
    form = {
        "type": "object",
        "required": ["grant_type", "client_id"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["authorization_code", "refresh_token"]},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "redirect_uri": {"type": "string"},
            "code": {"type": "string"},
            "code_verifier": {"type": "string"},
            "refresh_token": {"type": "string"},
        },
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Asana endpoints outside /api/1.0 (ml-connector known gaps)", "version": "1"},
        "servers": [{"url": f"{token_url.scheme}://{token_url.netloc}"}],
        "paths": {
            token_url.path: {
                "post": {
                    "operationId": "oauthToken",
                    "x-gap": "ASANA-OAUTH-TOKEN",
                    "requestBody": {
                        "required": True,
                        "content": {"application/x-www-form-urlencoded": {"schema": form}},
                    },
                    "responses": {
                        "200": {
                            "description": "Token issued.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["access_token", "token_type", "expires_in"],
                                        "properties": {
                                            "access_token": {"type": "string"},
                                            "token_type": {"type": "string"},
                                            "expires_in": {"type": "integer"},
                                            "refresh_token": {"type": "string"},
                                            "id_token": {"type": "string"},
                                            "data": {"type": "object"},
                                        },
                                    }
                                }
                            },
                        },
                        "default": {
                            "description": "Error (shape not documented).",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                    },
                }
            }
        },
    }


def _acumatica_extra_spec(vendor: Mapping[str, Any]) -> dict[str, Any]:
    error_content = copy.deepcopy(_ACU_ERROR_CONTENT)
    errors = {
        code: {"description": text, "content": error_content}
        for code, text in (
            ("400", "Invalid data."),
            ("401", "Not signed in."),
            ("429", "License limit (API Login Limit)."),
            ("500", "Server error."),
        )
    }
    credentials = {
        "type": "object",
        "required": ["name", "password"],
        "properties": {
            "name": {"type": "string"},
            "password": {"type": "string"},
            "tenant": {"type": "string"},
            "company": {"type": "string"},
            "branch": {"type": "string"},
            "locale": {"type": "string"},
        },
    }
    token_form = {
        "type": "object",
        "required": ["grant_type", "client_id"],
        "properties": {
            "grant_type": {"type": "string", "enum": ["password", "refresh_token", "authorization_code"]},
            "client_id": {"type": "string"},
            "client_secret": {"type": "string"},
            "client_assertion_type": {"type": "string"},
            "client_assertion": {"type": "string"},
            "username": {"type": "string"},
            "password": {"type": "string"},
            "scope": {"type": "string"},
            "refresh_token": {"type": "string"},
            "code": {"type": "string"},
            "redirect_uri": {"type": "string"},
            "code_verifier": {"type": "string"},
        },
    }
    oauth_error = {
        "description": "OAuth error (RFC 6749 §5.2) or license limit.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
                }
            },
            "text/plain": {"schema": {"type": "string"}},
        },
    }
    json_or_form = {
        "application/json": {"schema": credentials},
        "application/x-www-form-urlencoded": {"schema": credentials},
    }
    return {
        "openapi": "3.0.1",
        "info": {"title": "Acumatica instance-level endpoints (ml-connector known gaps)", "version": "1"},
        # Instance root of the exporter's server URL (servers[0] minus /entity/<name>/<version>).
        "servers": [{"url": _acumatica_endpoint(vendor)[0]}],
        "components": {"schemas": {"HttpError": copy.deepcopy(vendor["components"]["schemas"]["HttpError"])}},
        "paths": {
            "/entity/auth/login": {
                "post": {
                    "operationId": "Auth_Login",
                    "x-gap": "ACU-INSTANCE-ENDPOINTS",
                    "requestBody": {"required": True, "content": json_or_form},
                    "responses": {"204": {"description": "Signed in; cookies in Set-Cookie."}, **errors},
                }
            },
            "/entity/auth/logout": {
                "post": {
                    "operationId": "Auth_Logout",
                    "x-gap": "ACU-INSTANCE-ENDPOINTS",
                    "responses": {"204": {"description": "Signed out."}, **errors},
                }
            },
            "/identity/connect/token": {
                "post": {
                    "operationId": "Identity_Token",
                    "x-gap": "ACU-INSTANCE-ENDPOINTS",
                    "requestBody": {
                        "required": True,
                        "content": {"application/x-www-form-urlencoded": {"schema": token_form}},
                    },
                    "responses": {
                        "200": {
                            "description": "Token issued.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "access_token": {"type": "string"},
                                            "expires_in": {"type": "integer"},
                                            "token_type": {"type": "string"},
                                            "scope": {"type": "string"},
                                            "refresh_token": {"type": "string"},
                                            "id_token": {"type": "string"},
                                        },
                                    }
                                }
                            },
                        },
                        "400": oauth_error,
                        "401": oauth_error,
                        "429": oauth_error,
                        "500": oauth_error,
                    },
                }
            },
            "/entity": {
                "get": {
                    "operationId": "Entity_ListEndpoints",
                    "x-gap": "ACU-INSTANCE-ENDPOINTS",
                    "responses": {
                        "200": {
                            "description": "Build version and the endpoints of the instance.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["endpoints"],
                                        "properties": {
                                            "version": {
                                                "type": "object",
                                                "properties": {
                                                    "acumaticaBuildVersion": {"type": "string"},
                                                    "databaseVersion": {"type": "string"},
                                                    "oemBuildVersion": {"type": "string"},
                                                },
                                            },
                                            "endpoints": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": ["name", "version"],
                                                    "properties": {
                                                        "name": {"type": "string"},
                                                        "version": {"type": "string"},
                                                        "href": {"type": "string"},
                                                    },
                                                },
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "429": errors["429"],
                        "500": errors["500"],
                    },
                }
            },
        },
    }


_EXTRA_SPECS = {"asana": _asana_extra_spec, "acumatica": _acumatica_extra_spec}

_ACU_SERVER_RE = re.compile(r"^(?P<instance>.*?)/entity/(?P<name>[^/]+)/(?P<version>[^/]+)/?$")


def _acumatica_endpoint(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    """(instance URL, endpoint name, endpoint version) from the spec's servers[0]."""
    url = doc["servers"][0]["url"]
    m = _ACU_SERVER_RE.match(url)
    if not m:
        raise RuntimeError(f"Acumatica spec servers[0] {url!r} is not '<instance>/entity/<name>/<version>'")
    return m["instance"], m["name"], m["version"]


# --------------------------------------------------------------------------------------------------
# Routing: our URL -> (spec, path template, path variables)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Template:
    path: str
    segments: tuple[str | None, ...]  # literal, or None for a variable
    names: tuple[str | None, ...]  # variable names (None for literals)
    multi: tuple[bool, ...]
    methods: frozenset[str]

    @property
    def shape(self) -> tuple[str | None, ...]:
        return self.segments

    @property
    def rank(self) -> tuple[int, int, int]:
        nvars = sum(1 for s in self.segments if s is None)
        return (nvars, sum(self.multi), -(len(self.segments) - nvars))

    def match(self, segs: list[str]) -> dict[str, str] | None:
        out: dict[str, str] = {}
        if self._match(0, 0, segs, out):
            return out
        return None

    def _match(self, ti: int, si: int, segs: list[str], out: dict[str, str]) -> bool:
        if ti == len(self.segments):
            return si == len(segs)
        if si >= len(segs):
            return False
        lit = self.segments[ti]
        if lit is not None:
            return segs[si] == lit and self._match(ti + 1, si + 1, segs, out)
        name = self.names[ti]
        assert name is not None
        if not segs[si]:
            return False
        if not self.multi[ti]:
            out[name] = segs[si]
            return self._match(ti + 1, si + 1, segs, out)
        # Multi-segment variable: longest first, then shorter.
        remaining = len(self.segments) - ti - 1
        for end in range(len(segs) - remaining, si, -1):
            if all(segs[si:end]) and self._match(ti + 1, end, segs, out):
                out[name] = "/".join(segs[si:end])
                return True
        return False


_VAR_RE = re.compile(r"^\{([^}]+)\}$")


class _Spec:
    """One OpenAPI document (vendor or hand-written gaps) with its router and lazy validator."""

    def __init__(self, system: str, label: str, doc: dict[str, Any]):
        self.system = system
        self.label = label
        self.doc = doc
        server = urlsplit(doc["servers"][0]["url"])
        self.host_url = f"{server.scheme}://{server.netloc}"
        self.base_path = server.path.rstrip("/")
        multi_names = MULTI_SEGMENT_PARAMS.get(system, frozenset())
        self._by_first: dict[str | None, list[_Template]] = {}
        for path, item in doc.get("paths", {}).items():
            parts = path.strip("/").split("/") if path != "/" else [""]
            segs: list[str | None] = []
            names: list[str | None] = []
            multi: list[bool] = []
            for part in parts:
                m = _VAR_RE.match(part)
                segs.append(None if m else part)
                names.append(m.group(1) if m else None)
                multi.append(bool(m) and m.group(1) in multi_names)
            tpl = _Template(
                path, tuple(segs), tuple(names), tuple(multi), frozenset(k for k in item if k in HTTP_METHODS)
            )
            self._by_first.setdefault(tpl.segments[0], []).append(tpl)
        self._openapi: Any = None
        self._lock = threading.Lock()

    def find(self, rel_path: str) -> list[tuple[_Template, dict[str, str]]]:
        segs = [unquote(s) for s in rel_path.strip("/").split("/")] if rel_path.strip("/") else [""]
        if rel_path.endswith("/") and rel_path != "/":
            segs.append("")  # a trailing slash is not the same path
        candidates = self._by_first.get(segs[0], []) + self._by_first.get(None, [])
        found = []
        for tpl in candidates:
            variables = tpl.match(segs)
            if variables is not None:
                found.append((tpl, variables))
        return found

    @property
    def openapi(self) -> Any:
        if self._openapi is None:
            with self._lock:
                if self._openapi is None:
                    from openapi_core import Config, OpenAPI

                    # The vendor documents are not re-validated here (~1 s for Asana, ~7 s for
                    # Acumatica); the contract tests validate them with openapi-spec-validator.
                    config = Config(
                        spec_validator_cls=None,
                        path_finder_cls=_exact_path_finder_cls(self.host_url, self.base_path),
                    )
                    self._openapi = OpenAPI.from_dict(self.doc, config=config)
        return self._openapi

    def operation(self, tpl: _Template, method: str) -> dict[str, Any]:
        return self.doc["paths"][tpl.path][method]

    def resolve(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                raise RuntimeError(f"external $ref not supported: {ref}")
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
            seen += 1
            if seen > 50:
                raise RuntimeError(f"$ref loop at {ref}")
        return node

    def parameters(self, tpl: _Template, method: str) -> list[dict[str, Any]]:
        item = self.doc["paths"][tpl.path]
        params = {}
        for p in item.get("parameters", []) + item[method].get("parameters", []):
            p = self.resolve(p)
            params[(p["name"], p["in"])] = p
        return list(params.values())


def _exact_path_finder_cls(host_url: str, base_path: str) -> type:
    """A path finder that looks up the template our router chose.

    openapi-core's own finder scans every path template with a regex on each call (~3 ms for
    Acumatica's ~1 160 paths); ours has already picked the operation and passes it as path_pattern.
    """
    from openapi_core.templating.datatypes import TemplateResult
    from openapi_core.templating.paths.datatypes import PathOperationServer
    from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound

    prefix = host_url + base_path

    class ExactPathFinder:
        def __init__(self, spec: Any, base_url: str | None = None):
            self.spec = spec

        def find(self, method: str, name: str) -> Any:
            template = name[len(prefix) :] if name.startswith(prefix) else None
            paths = self.spec / "paths"
            if template is None or template not in paths:
                raise PathNotFound(name)
            path = paths / template
            if method not in path:
                raise OperationNotFound(name, method)
            server = next(iter(self.spec / "servers"))
            return PathOperationServer(
                path,
                path / method,
                server,
                TemplateResult(template, {}),
                TemplateResult(server["url"], {}),
            )

    return ExactPathFinder


# --------------------------------------------------------------------------------------------------
# openapi-core request/response adapters
# --------------------------------------------------------------------------------------------------


class _CoreRequest:
    """Implements openapi_core.protocols.Request + SupportsPathPattern."""

    def __init__(
        self,
        spec: _Spec,
        tpl: _Template,
        variables: dict[str, str],
        method: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ):
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        cookies: dict[str, str] = {}
        cookie_header = _header(headers, "cookie")
        if cookie_header:
            jar: SimpleCookie = SimpleCookie()
            jar.load(cookie_header)
            cookies = {k: v.value for k, v in jar.items()}
        self.host_url = spec.host_url
        self.path_pattern = spec.base_path + tpl.path
        self.path = self.path_pattern
        self.method = method.lower()
        self.body = body
        self.content_type = (_header(headers, "content-type") or "").lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query),
            header=Headers(list(headers.items())),
            cookie=ImmutableMultiDict(cookies),
            path=dict(variables),
        )


class _CoreResponse:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes | None):
        from werkzeug.datastructures import Headers

        self.status_code = int(status)
        self.headers = Headers(list(headers.items()))
        self.content_type = (_header(headers, "content-type") or "").lower()
        self.data = body


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


def _describe(exc: BaseException) -> str:
    """Turn an openapi-core exception chain into one line: the failing part plus each schema error."""
    parts: list[str] = []
    node: BaseException | None = exc
    depth = 0
    while node is not None and depth < 6:
        schema_errors = getattr(node, "schema_errors", None)
        if schema_errors:
            for err in schema_errors:
                where = "$" + "".join(
                    f"[{p}]" if isinstance(p, int) else f".{p}" for p in getattr(err, "absolute_path", [])
                )
                parts.append(f"{where}: {getattr(err, 'message', err)}")
            break
        text = str(node)
        if "not valid for schema" in text:  # the schema errors below say it better than a value dump
            text = ""
        text = text if len(text) <= 200 else text[:200] + "..."
        parts.append(f"{type(node).__name__}: {text}" if text else type(node).__name__)
        node = node.__cause__ or node.__context__
        depth += 1
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------------
# Checks beyond what openapi-core does
# --------------------------------------------------------------------------------------------------


def _asana_envelope_problems(kind: str, method: str, status: int | None, value: Any) -> list[str]:
    """Gap ASANA-ENVELOPE."""
    if kind == "request":
        if not isinstance(value, dict) or not isinstance(value.get("data"), dict):
            return ['request body must be a JSON object {"data": {...}} (Asana envelope)']
        extra = sorted(set(value) - {"data", "options"})
        if extra:
            return [f"request body has top-level keys {extra} beside the envelope ('data', 'options')"]
        options = value.get("options", {})
        if not isinstance(options, dict) or set(options) - {"fields", "pretty"}:
            return ["request 'options' must be an object with only 'fields' and/or 'pretty'"]
        return []
    assert status is not None
    if 200 <= status < 300:
        if not isinstance(value, dict) or "data" not in value:
            return ['2xx response body must be a JSON object with "data" (Asana envelope)']
    elif status >= 400:
        errors = value.get("errors") if isinstance(value, dict) else None
        if (
            not isinstance(errors, list)
            or not errors
            or not all(isinstance(e, dict) and isinstance(e.get("message"), str) for e in errors)
        ):
            return ['error response body must be {"errors": [{"message": "..."}, ...]}']
    return []


def _schema_shape(
    spec: _Spec, schema: Any, depth: int = 0
) -> tuple[dict[str, list[Any]], bool, list[Any], list[Any]]:
    """(properties -> schemas, open?, additionalProperties schemas, array item schemas)."""
    schema = spec.resolve(schema)
    props: dict[str, list[Any]] = {}
    additional: list[Any] = []
    items: list[Any] = []
    if not isinstance(schema, dict) or depth > 30:
        return props, True, additional, items
    is_open = False
    declares = False
    for name, sub in schema.get("properties", {}).items():
        props.setdefault(name, []).append(sub)
        declares = True
    ap = schema.get("additionalProperties")
    if ap is True or (isinstance(ap, dict) and not ap):
        is_open = True
    elif isinstance(ap, dict):
        additional.append(ap)
        declares = True
    if "items" in schema:
        items.append(schema["items"])
    combinators = [s for key in ("allOf", "anyOf", "oneOf") for s in schema.get(key, [])]
    for sub in combinators:
        p, o, a, i = _schema_shape(spec, sub, depth + 1)
        for name, subs in p.items():
            props.setdefault(name, []).extend(subs)
        is_open = is_open or o
        additional.extend(a)
        items.extend(i)
        declares = declares or bool(p) or bool(a)
    if not declares and not combinators and schema.get("type") in (None, "object") and "items" not in schema:
        is_open = True
    return props, is_open, additional, items


def _discriminated(spec: _Spec, schemas: list[Any], value: Any) -> list[Any]:
    """Add the concrete schema a discriminator selects (Acumatica custom fields: type=CustomStringField)."""
    out = list(schemas)
    if not isinstance(value, dict):
        return out
    for schema in schemas:
        schema = spec.resolve(schema)
        if not isinstance(schema, dict):
            continue
        for sub in [schema] + [
            spec.resolve(s) for key in ("allOf", "anyOf", "oneOf") for s in schema.get(key, [])
        ]:
            disc = sub.get("discriminator") if isinstance(sub, dict) else None
            if not disc or not isinstance(value.get(disc.get("propertyName")), str):
                continue
            name = value[disc["propertyName"]]
            ref = disc.get("mapping", {}).get(name, f"#/components/schemas/{name}")
            if (
                name in spec.doc.get("components", {}).get("schemas", {})
                or ref in disc.get("mapping", {}).values()
            ):
                out.append({"$ref": ref})
    return out


def _unknown_properties(spec: _Spec, schemas: list[Any], value: Any, where: str, out: list[str]) -> None:
    """Report object keys the schema does not declare (the specs never say additionalProperties: false)."""
    if not schemas or len(out) > 20:
        return
    schemas = _discriminated(spec, schemas, value)
    props: dict[str, list[Any]] = {}
    additional: list[Any] = []
    items: list[Any] = []
    is_open = False
    for schema in schemas:
        p, o, a, i = _schema_shape(spec, schema)
        for name, subs in p.items():
            props.setdefault(name, []).extend(subs)
        is_open = is_open or o
        additional.extend(a)
        items.extend(i)
    if isinstance(value, dict):
        for key, sub in value.items():
            if key in props:
                _unknown_properties(spec, props[key], sub, f"{where}.{key}", out)
            elif additional:
                _unknown_properties(spec, additional, sub, f"{where}.{key}", out)
            elif not is_open and props:
                known = ", ".join(sorted(props)[:40])
                out.append(f"{where}.{key}: property not in the spec (known: {known})")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _unknown_properties(spec, items, sub, f"{where}[{i}]", out)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _is_json(content_type: str | None) -> bool:
    mt = _media_type(content_type)
    return mt == "application/json" or mt.endswith("+json") or mt == "text/json"


# --------------------------------------------------------------------------------------------------
# The contract
# --------------------------------------------------------------------------------------------------


@dataclass
class _Route:
    spec: _Spec
    rel_path: str
    candidates: list[tuple[_Template, dict[str, str]]] = field(default_factory=list)


class Contract:
    """Validates traffic of one system against its vendor spec plus the documented known gaps."""

    def __init__(self, system: str, vendor: _Spec, extra: _Spec, timings: dict[str, float]):
        self.system = system
        self.vendor = vendor
        self.extra = extra
        self.timings = timings
        if system == "acumatica":
            _, self.endpoint_name, self.endpoint_version = _acumatica_endpoint(vendor.doc)

    def __repr__(self) -> str:
        return f"<Contract {self.system} {self.vendor.doc.get('info', {}).get('version', '')}>"

    # ---- routing ---------------------------------------------------------------------------------

    def _route(self, url: str) -> tuple[_Route | None, str | None]:
        path = urlsplit(url).path or "/"
        if self.system == "asana":
            return self._route_asana(path)
        return self._route_acumatica(path)

    def _route_asana(self, path: str) -> tuple[_Route | None, str | None]:
        extra = self.extra.find(path)
        if extra:
            return _Route(self.extra, path, extra), None
        base = self.vendor.base_path
        if path != base and not path.startswith(base + "/"):
            return None, f"path {path} is not under the API base {base}"
        rel = path[len(base) :] or "/"
        return _Route(self.vendor, rel, self.vendor.find(rel)), None

    _ACU_PATH_RE = re.compile(r"^(?P<instance>(?:/[^/]+)*?)(?P<rest>/(?:entity|identity)(?:/.*)?)$")

    def _route_acumatica(self, path: str) -> tuple[_Route | None, str | None]:
        """Gap ACU-SERVER-PREFIX: '{instance}/entity/<name>/<version>/<p>' -> spec path '<p>'."""
        m = self._ACU_PATH_RE.match(path)
        if not m:
            return None, f"path {path} is neither <instance>/entity/... nor <instance>/identity/..."
        rest = m["rest"]
        extra = self.extra.find(rest)
        if extra:
            return _Route(self.extra, rest, extra), None
        parts = rest.split("/", 4)  # ['', 'entity', name, version, remainder]
        if len(parts) < 4 or parts[1] != "entity":
            return None, f"{rest} is not an endpoint URL (<instance>/entity/<name>/<version>/<Entity>...)"
        if (parts[2], parts[3]) != (self.endpoint_name, self.endpoint_version):
            return None, (
                f"no spec for endpoint {parts[2]}/{parts[3]}; the contract covers "
                f"{self.endpoint_name}/{self.endpoint_version}"
            )
        rel = "/" + (parts[4] if len(parts) > 4 else "")
        return _Route(self.vendor, rel, self.vendor.find(rel)), None

    def _operations_for(
        self, method: str, url: str
    ) -> tuple[_Spec | None, list[tuple[_Template, dict[str, str]]], list[str]]:
        route, problem = self._route(url)
        if route is None:
            return None, [], [problem or "unroutable URL"]
        m = method.lower()
        if not route.candidates:
            return (
                None,
                [],
                [
                    f"path {route.rel_path} is neither in the {self.system} spec "
                    "nor on the known-gaps allow-list"
                ],
            )
        with_method = [(t, v) for t, v in route.candidates if m in t.methods]
        if not with_method:
            allowed = sorted({x.upper() for t, _ in route.candidates for x in t.methods})
            templates = sorted({t.path for t, _ in route.candidates})
            return None, [], [f"method {m.upper()} not allowed on {templates} (spec allows {allowed})"]
        best = min(t.rank for t, _ in with_method)
        best_shape = next(t.shape for t, _ in with_method if t.rank == best)
        # Same shape (e.g. /Bill/{id} vs /Bill/{ids}): either may match.
        group = [(t, v) for t, v in with_method if t.shape == best_shape]
        group.sort(key=lambda tv: tv[0].rank)
        return route.spec, group, []

    # ---- requests --------------------------------------------------------------------------------

    def check_request(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes | str | None = None
    ) -> list[str]:
        """Problems with this request (empty list if it matches the contract)."""
        headers = dict(headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        if body == b"":
            body = None
        if (
            self.system == "asana"
            and method.upper() == "DELETE"
            and body is not None
            and body.strip() == b"{}"
        ):
            body = None  # ASANA-SDK-QUIRKS: the official SDK sends `{}` with every DELETE
        spec, group, problems = self._operations_for(method, url)
        if spec is None:
            return problems
        query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
        return _first_valid(
            group,
            lambda tpl, variables: self._check_request_against(
                spec, tpl, variables, method, query, headers, body
            ),
        )

    def _check_request_against(
        self,
        spec: _Spec,
        tpl: _Template,
        variables: dict[str, str],
        method: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> list[str]:
        m = method.lower()
        op = spec.operation(tpl, m)
        problems: list[str] = []

        # Undeclared query parameters (stricter than the spec: catches typos such as 'modified_sinse').
        declared = {p["name"] for p in spec.parameters(tpl, m) if p["in"] == "query"}
        allowed_patterns = EXTRA_QUERY_PARAMS.get(self.system, {}).get((tpl.path, m), ())
        for name in dict.fromkeys(k for k, _ in query):
            if name not in declared and not any(re.fullmatch(rx, name) for rx in allowed_patterns):
                problems.append(
                    f"query parameter {name!r} is not declared for {m.upper()} {tpl.path} "
                    f"(declared: {sorted(declared)})"
                )

        content_type = _header(headers, "content-type")
        request_body = spec.resolve(op.get("requestBody")) if op.get("requestBody") else None
        parsed: Any = None
        if body is not None:
            if request_body is None:
                problems.append(
                    f"{m.upper()} {tpl.path} takes no request body, but {len(body)} bytes were sent"
                )
            elif not content_type:
                problems.append("request has a body but no Content-Type header")
            elif _is_json(content_type):
                try:
                    parsed = json.loads(body)
                except ValueError as exc:
                    problems.append(f"request body is not valid JSON: {exc}")
                    return problems

        if (
            self.system == "asana"
            and spec is self.vendor
            and m in ("post", "put")
            and (body is not None and _is_json(content_type))
        ):
            envelope = _asana_envelope_problems("request", m, None, parsed)
            if envelope:
                return problems + envelope

        # openapi-core cannot check oauth2 and then accepts the request: require the bearer token the
        # spec's security requirements ask for (both Asana schemes send 'Authorization: Bearer ...').
        security = op.get("security", spec.doc.get("security"))
        authorization = (_header(headers, "authorization") or "").strip()
        if security and {} not in security and not authorization.lower().startswith("bearer "):
            problems.append("missing 'Authorization: Bearer <token>' header required by the spec's security")

        try:
            core_request = _CoreRequest(spec, tpl, variables, m, query, headers, body)
            with _quiet_openapi_core():
                spec.openapi.validate_request(core_request)
        except Exception as exc:  # openapi-core raises a family of errors; report them all alike
            if _is_openapi_error(exc):
                problems.append(_describe(exc))
            else:
                raise

        # Unknown properties in JSON bodies (the vendors' schemas never forbid them).
        if parsed is not None and request_body is not None:
            media = request_body.get("content", {}).get(_media_type(content_type))
            if media and "schema" in media:
                value = parsed
                if self.system == "asana" and isinstance(parsed, dict):
                    value = {k: v for k, v in parsed.items() if k != "options"}
                _unknown_properties(spec, [media["schema"]], value, "$", problems)
        return problems

    def validate_request(
        self, method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes | str | None = None
    ) -> None:
        problems = self.check_request(method, url, headers, body)
        if problems:
            raise ContractViolation(self.system, method, url, problems, kind="request")

    def validate_prepared_request(self, request: Any) -> None:
        """A ``requests.PreparedRequest`` (or anything with method, url, headers, body)."""
        self.validate_request(
            request.method, request.url, dict(request.headers or {}), _body_bytes(request.body)
        )

    # ---- responses -------------------------------------------------------------------------------

    def check_response(
        self,
        method: str,
        url: str,
        request_headers: Mapping[str, str] | None,
        status: int,
        response_headers: Mapping[str, str] | None,
        body: bytes | str | None,
    ) -> list[str]:
        response_headers = dict(response_headers or {})
        if isinstance(body, str):
            body = body.encode("utf-8")
        spec, group, problems = self._operations_for(method, url)
        if spec is None:
            return problems
        return _first_valid(
            group,
            lambda tpl, variables: self._check_response_against(
                spec, tpl, variables, method, dict(request_headers or {}), int(status), response_headers, body
            ),
        )

    def _check_response_against(
        self,
        spec: _Spec,
        tpl: _Template,
        variables: dict[str, str],
        method: str,
        request_headers: Mapping[str, str],
        status: int,
        response_headers: Mapping[str, str],
        body: bytes | None,
    ) -> list[str]:
        m = method.lower()
        problems: list[str] = []
        content_type = _header(response_headers, "content-type")
        if body and _is_json(content_type):
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                return [f"response body is not valid JSON: {exc}"]
            if self.system == "asana" and spec is self.vendor:
                problems.extend(_asana_envelope_problems("response", m, status, parsed))
        elif body and not content_type:
            return ["response has a body but no Content-Type header"]
        try:
            core_request = _CoreRequest(spec, tpl, variables, m, [], request_headers, None)
            with _quiet_openapi_core():
                spec.openapi.validate_response(
                    core_request, _CoreResponse(status, response_headers, body or None)
                )
        except Exception as exc:
            if _is_openapi_error(exc):
                problems.append(f"status {status}: {_describe(exc)}")
            else:
                raise
        return problems

    def validate_response(
        self,
        method: str,
        url: str,
        request_headers: Mapping[str, str] | None,
        status: int,
        response_headers: Mapping[str, str] | None,
        body: bytes | str | None,
    ) -> None:
        problems = self.check_response(method, url, request_headers, status, response_headers, body)
        if problems:
            raise ContractViolation(self.system, method, url, problems, kind="response")

    def validate_exchange(self, exchange: tuple[Any, Any], *, request: bool = True) -> None:
        """``(request, response)``: a ``requests.PreparedRequest`` and a ``requests.Response``.

        Validates the request (unless ``request=False``) and then the response.
        """
        req, resp = exchange
        if request:
            self.validate_prepared_request(req)
        self.validate_response(
            req.method,
            req.url,
            dict(req.headers or {}),
            resp.status_code,
            dict(resp.headers or {}),
            resp.content,
        )


def _first_valid(group: list, check: Callable[[Any, dict[str, str]], list[str]]) -> list[str]:
    """Where several templates share a shape (gap ACU-MULTI-KEY-IDS), passing one of them is enough;
    otherwise every template's problems are reported, each labelled with its path."""
    problems: list[str] = []
    for tpl, variables in group:
        found = check(tpl, variables)
        if not found:
            return []
        problems.extend(f"[{tpl.path}] {p}" if len(group) > 1 else p for p in found)
    return problems


def _body_bytes(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    raise TypeError(f"cannot validate a streamed request body of type {type(body).__name__}")


@contextlib.contextmanager
def _quiet_openapi_core() -> Iterator[None]:
    """openapi-core warns about the spec (oauth2 scheme, allowEmptyValue), not about our traffic."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unsupported scheme type")
        warnings.filterwarnings("ignore", message="Use of allowEmptyValue property is deprecated")
        yield


def _is_openapi_error(exc: BaseException) -> bool:
    from openapi_core.exceptions import OpenAPIError

    return isinstance(exc, OpenAPIError)


# --------------------------------------------------------------------------------------------------
# Per-process cache
# --------------------------------------------------------------------------------------------------

_CONTRACTS: dict[tuple[str, str], Contract] = {}
_CONTRACTS_LOCK = threading.Lock()


def get_contract(system: str) -> Contract:
    """The contract for ``"asana"`` or ``"acumatica"``; built once per process (and spec directory)."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; expected one of {SYSTEMS}")
    directory = specs_dir()
    key = (system, str(directory))
    contract = _CONTRACTS.get(key)
    if contract is not None:
        return contract
    with _CONTRACTS_LOCK:
        contract = _CONTRACTS.get(key)
        if contract is None:
            contract = _build_contract(system, directory)
            _CONTRACTS[key] = contract
    return contract


def _build_contract(system: str, directory: Path) -> Contract:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    path = directory / SPEC_FILES[system]
    if not path.exists():
        raise FileNotFoundError(f"{system} spec not found at {path} (set ML_CONNECTOR_SPECS_DIR)")
    doc = _load_spec_document(path, timings)
    t1 = time.perf_counter()
    for patch in _SPEC_PATCHES[system]:
        patch(doc)
    vendor = _Spec(system, "vendor", doc)
    extra = _Spec(system, "known-gaps", _EXTRA_SPECS[system](doc))
    timings["patch_and_index"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    vendor.openapi  # noqa: B018 - build the openapi-core objects now, not in the first test
    extra.openapi  # noqa: B018
    timings["openapi_core"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return Contract(system, vendor, extra, timings)
