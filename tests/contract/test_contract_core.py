"""The contract module itself: API, caching, loading, the gaps table, the specs' own validity."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from sandbox import contract
from sandbox.contract import KNOWN_GAPS, ContractViolation, get_contract

from .helpers import ACU, ASANA, ASANA_HEADERS, ASANA_TASK, JSON, dumps

REPO = Path(contract.__file__).resolve().parents[1]


def make_response(status, headers, body: bytes) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp.headers = CaseInsensitiveDict(headers)
    resp._content = body
    return resp


def test_violation_names_system_method_path_and_problem(asana):
    with pytest.raises(AssertionError) as info:
        asana.validate_request("POST", f"{ASANA}/tasks?x=1", ASANA_HEADERS, dumps({"name": "x"}))
    err = info.value
    assert isinstance(err, ContractViolation)
    assert (err.system, err.method, err.path, err.kind) == ("asana", "POST", "/api/1.0/tasks", "request")
    assert err.problems
    message = str(err)
    assert message.startswith("asana request POST /api/1.0/tasks violates the contract")
    assert "envelope" in message


def test_check_returns_problems_instead_of_raising(asana):
    assert asana.check_request("GET", f"{ASANA}/tasks/1", ASANA_HEADERS) == []
    assert asana.check_request("GET", f"{ASANA}/nope", ASANA_HEADERS) != []


def test_get_contract_is_cached_per_process():
    assert get_contract("asana") is get_contract("asana")
    assert get_contract("acumatica") is not get_contract("asana")
    with pytest.raises(ValueError):
        get_contract("sage100")


def test_specs_dir_default_and_override(monkeypatch, tmp_path):
    monkeypatch.delenv("ML_CONNECTOR_SPECS_DIR", raising=False)
    assert contract.specs_dir() == REPO.parent / "shared" / "specs"
    monkeypatch.setenv("ML_CONNECTOR_SPECS_DIR", str(tmp_path))
    assert contract.specs_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="ML_CONNECTOR_SPECS_DIR"):
        get_contract("acumatica")


def test_module_imports_without_openapi_core():
    code = (
        "import sys; sys.modules['openapi_core'] = None; sys.modules['yaml'] = None\n"
        "import sandbox.contract as c\n"
        "assert c.ContractViolation and c.get_contract and c.KNOWN_GAPS\n"
        "print('ok')\n"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_yaml_is_parsed_once_then_read_from_the_hash_keyed_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ML_CONNECTOR_CONTRACT_CACHE", str(tmp_path))
    path = contract.specs_dir() / contract.SPEC_FILES["asana"]
    first: dict = {}
    doc = contract._load_spec_document(path, first)
    assert first["cache_hit"] == 0.0
    cached = list(tmp_path.glob("asana_oas-*.json"))
    assert len(cached) == 1
    second: dict = {}
    assert contract._load_spec_document(path, second) == doc
    assert second["cache_hit"] == 1.0
    # gap ASANA-YAML-INT-CODES: response codes are strings, timestamps stay strings
    responses = doc["paths"]["/tasks"]["post"]["responses"]
    assert "201" in responses and 201 not in responses
    json.dumps(doc)  # nothing YAML-specific (datetime, int keys) left


def test_cache_can_be_disabled(monkeypatch):
    monkeypatch.setenv("ML_CONNECTOR_CONTRACT_CACHE", "off")
    assert contract.cache_dir() is None


def test_requests_wrappers(asana):
    req = requests.Request(
        "POST", f"{ASANA}/tasks", json={"data": {"name": "x", "projects": ["1"]}}, headers=ASANA_HEADERS
    ).prepare()
    asana.validate_prepared_request(req)
    asana.validate_exchange((req, make_response(201, JSON, dumps({"data": ASANA_TASK}))))
    with pytest.raises(ContractViolation, match="response POST"):
        asana.validate_exchange((req, make_response(201, JSON, dumps(ASANA_TASK))))


def test_acumatica_wrapper_with_response_object(acumatica):
    req = requests.Request(
        "GET", f"{ACU}/Bill", params={"$top": 1}, headers={"Authorization": "Bearer t"}
    ).prepare()
    acumatica.validate_exchange((req, make_response(200, JSON, b"[]")))


def test_gaps_table_matches_spec_gaps_md_and_code():
    md = (Path(contract.__file__).parent / "SPEC_GAPS.md").read_text()
    ids = [gap.id for gap in KNOWN_GAPS]
    assert len(ids) == len(set(ids))
    documented = set(re.findall(r"^\| ((?:ASANA|ACU)-[A-Z0-9-]+) \|", md, flags=re.M))
    assert documented == set(ids)
    for gap in KNOWN_GAPS:
        assert gap.system in contract.SYSTEMS and gap.evidence
        for name in (n.strip() for n in gap.implemented_by.split(",")):
            assert hasattr(contract, name) or hasattr(contract.Contract, name), name


def test_every_hand_written_operation_is_tagged_with_its_gap():
    ids = {gap.id for gap in KNOWN_GAPS}
    for system in contract.SYSTEMS:
        extra = get_contract(system).extra.doc
        for _path, _method, op in contract._operations(extra):
            assert op.get("x-gap") in ids


def test_patched_asana_spec_and_hand_written_specs_are_valid_openapi():
    from openapi_spec_validator import validate

    validate(get_contract("asana").vendor.doc)
    validate(get_contract("asana").extra.doc)
    validate(get_contract("acumatica").extra.doc)


@pytest.mark.slow
def test_patched_acumatica_spec_is_valid_openapi():
    from openapi_spec_validator import validate

    validate(get_contract("acumatica").vendor.doc)  # ~7 s
