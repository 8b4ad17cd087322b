"""Asana requests and responses against asana_oas.yaml plus the documented gaps."""

import pytest

from sandbox.contract import ContractViolation

from .helpers import ASANA, ASANA_HEADERS, ASANA_TASK, JSON, JSON_UTF8, dumps

# ---- requests: what must pass ---------------------------------------------------------------------


def test_create_task_with_envelope_and_numeric_custom_field(asana):
    body = {"data": {"name": "x", "projects": ["123"], "custom_fields": {"456": 12.5}}}
    asana.validate_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps(body))


@pytest.mark.parametrize(
    "value",
    ["Approved", "1201", 12.5, 3, None, ["7", "8"], {"date": "2026-07-31"}],
    ids=["text", "enum-gid", "number", "int", "null-clears", "multi-enum", "date-object"],
)
def test_custom_field_values_allowed_by_gap(asana, value):
    body = {"data": {"name": "x", "projects": ["123"], "custom_fields": {"456": value}}}
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps(body)) == []


def test_create_approval_task_with_the_fields_we_use(asana):
    body = {
        "data": {
            "name": "Bill 000123 - ACME Corp",
            "projects": ["123"],
            "notes": "plain text",
            "html_notes": "<body>Bill <strong>000123</strong></body>",
            "due_on": "2026-07-31",
            "assignee": "me",
            "followers": ["42"],
            "tags": ["77"],
            "resource_subtype": "approval",
            "custom_fields": {"456": 100.5, "457": "1201"},
            "external": {"gid": "erp:bill:000123", "data": '{"v":1}'},
        },
        "options": {"fields": ["gid", "permalink_url"]},
    }
    url = f"{ASANA}/tasks?opt_fields=gid,permalink_url,custom_fields.gid,custom_fields.display_value"
    asana.validate_request("POST", url, ASANA_HEADERS, dumps(body))


def test_list_tasks_modified_since(asana):
    url = f"{ASANA}/tasks?project=1&modified_since=2026-01-01T00:00:00Z&opt_fields=name&limit=100"
    asana.validate_request("GET", url, {"Authorization": "Bearer t"}, None)


def test_update_get_delete_task(asana):
    asana.validate_request("PUT", f"{ASANA}/tasks/1200", ASANA_HEADERS, dumps({"data": {"completed": True}}))
    asana.validate_request("GET", f"{ASANA}/tasks/1200?opt_fields=approval_status,completed", ASANA_HEADERS)
    asana.validate_request("DELETE", f"{ASANA}/tasks/1200", ASANA_HEADERS)


def test_webhook_and_roster_calls(asana):
    webhook = {
        "data": {
            "resource": "123",
            "target": "https://connector.example.com/asana/webhooks/6b1f/",
            "filters": [
                {"resource_type": "task", "action": "changed", "fields": ["completed", "custom_fields"]},
                {
                    "resource_type": "task",
                    "resource_subtype": "approval",
                    "action": "changed",
                    "fields": ["approval_status"],
                },
            ],
        }
    }
    asana.validate_request("POST", f"{ASANA}/webhooks", ASANA_HEADERS, dumps(webhook))
    asana.validate_request("GET", f"{ASANA}/users?workspace=1&limit=100&opt_fields=name,email", ASANA_HEADERS)
    asana.validate_request(
        "POST", f"{ASANA}/workspaces/1/addUser", ASANA_HEADERS, dumps({"data": {"user": "a@example.com"}})
    )


def test_search_custom_field_filters_allowed_by_gap(asana):
    url = f"{ASANA}/workspaces/1/tasks/search?custom_fields.456.value=abc&projects.any=123&opt_fields=name"
    asana.validate_request("GET", url, ASANA_HEADERS)


def test_oauth_token_refresh_allowed_by_gap(asana):
    body = b"grant_type=refresh_token&client_id=1&client_secret=s&refresh_token=r"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    asana.validate_request("POST", "https://app.asana.com/-/oauth_token", headers, body)


# ---- requests: what must fail ---------------------------------------------------------------------


def test_create_task_without_envelope_fails(asana):
    with pytest.raises(ContractViolation, match="envelope"):
        asana.validate_request(
            "POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps({"name": "x", "projects": ["1"]})
        )


@pytest.mark.parametrize(
    "body",
    [{"data": []}, {"data": {"name": "x"}, "extra": 1}, {"data": {"name": "x"}, "options": {"bogus": 1}}],
    ids=["data-list", "extra-top-level-key", "bad-options"],
)
def test_malformed_envelope_fails(asana, body):
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps(body))


def test_undocumented_path_fails(asana):
    with pytest.raises(ContractViolation, match="neither in the asana spec nor on the known-gaps"):
        asana.validate_request("POST", f"{ASANA}/tasks/1200/approve", ASANA_HEADERS, dumps({"data": {}}))


def test_wrong_method_fails(asana):
    problems = asana.check_request("PATCH", f"{ASANA}/tasks/1200", ASANA_HEADERS, dumps({"data": {}}))
    assert problems and "PATCH not allowed" in problems[0]


def test_path_outside_api_base_fails(asana):
    assert asana.check_request("GET", "https://app.asana.com/api/2.0/tasks", ASANA_HEADERS)


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("project=1&modified_sinse=2026-01-01T00:00:00Z", "'modified_sinse' is not declared"),
        ("project=1&modified_since=yesterday", "date-time"),
        ("project=1&limit=101", "maximum"),
        ("project=1&opt_fields=nonsense", "opt_fields"),
    ],
)
def test_bad_query_parameters_fail(asana, query, fragment):
    problems = asana.check_request("GET", f"{ASANA}/tasks?{query}", ASANA_HEADERS)
    assert any(fragment in p for p in problems), problems


def test_unknown_task_property_fails(asana):
    problems = asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps({"data": {"nme": "x"}}))
    assert any("$.data.nme" in p for p in problems), problems


def test_read_only_and_mistyped_properties_fail(asana):
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps({"data": {"gid": "1"}}))
    bad_cf = {"data": {"name": "x", "custom_fields": {"456": True}}}
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps(bad_cf))
    # memberships is readOnly in the spec but writable at creation (gap ASANA-CREATE-MEMBERSHIPS) ...
    with_membership = {"data": {"name": "x", "memberships": [{"project": "1", "section": "2"}]}}
    assert not asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps(with_membership))
    # ... as project/section GID strings only
    bad_membership = {"data": {"name": "x", "memberships": [{"project": {"gid": "1"}, "section": 2}]}}
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, dumps(bad_membership))


def test_missing_bearer_token_fails(asana):
    problems = asana.check_request("GET", f"{ASANA}/tasks/1200", {})
    assert any("Authorization: Bearer" in p for p in problems), problems


def test_body_on_get_and_missing_body_fail(asana):
    assert asana.check_request("GET", f"{ASANA}/tasks/1200", ASANA_HEADERS, b"{}")
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, None)
    assert asana.check_request("POST", f"{ASANA}/tasks", ASANA_HEADERS, b"not json")


def test_search_unknown_custom_field_operator_fails(asana):
    assert asana.check_request(
        "GET", f"{ASANA}/workspaces/1/tasks/search?custom_fields.456.bogus=1", ASANA_HEADERS
    )


def test_oauth_token_with_json_body_fails(asana):
    body = dumps({"grant_type": "refresh_token", "client_id": "1"})
    assert asana.check_request("POST", "https://app.asana.com/-/oauth_token", JSON, body)


# ---- responses ------------------------------------------------------------------------------------


def test_task_responses_validate(asana):
    asana.validate_response(
        "POST", f"{ASANA}/tasks", ASANA_HEADERS, 201, JSON_UTF8, dumps({"data": ASANA_TASK})
    )
    asana.validate_response(
        "GET", f"{ASANA}/tasks/1200", ASANA_HEADERS, 200, JSON, dumps({"data": ASANA_TASK})
    )
    asana.validate_response("DELETE", f"{ASANA}/tasks/1200", ASANA_HEADERS, 200, JSON, dumps({"data": {}}))


def test_task_list_response_with_next_page(asana):
    body = {
        "data": [{"gid": "1", "resource_type": "task", "name": "a", "resource_subtype": "default_task"}],
        "next_page": {
            "offset": "eyJ0",
            "path": "/tasks?limit=100&offset=eyJ0",
            "uri": f"{ASANA}/tasks?offset=eyJ0",
        },
    }
    asana.validate_response(
        "GET", f"{ASANA}/tasks?project=1&limit=100", ASANA_HEADERS, 200, JSON, dumps(body)
    )


@pytest.mark.parametrize(
    "status, message",
    [
        (400, "project: Missing input"),
        (401, "Not Authorized"),
        (403, "Forbidden"),
        (404, "Unknown object"),
        (429, "You've made too many requests and hit a rate limit."),
        (500, "Server Error"),
    ],
)
def test_error_responses_validate(asana, status, message):
    body = {"errors": [{"message": message, "help": "https://developers.asana.com/docs/errors"}]}
    headers = {**JSON, "Retry-After": "30"} if status == 429 else JSON
    asana.validate_response("POST", f"{ASANA}/tasks", ASANA_HEADERS, status, headers, dumps(body))


def test_response_without_envelope_fails(asana):
    with pytest.raises(ContractViolation, match="data"):
        asana.validate_response("GET", f"{ASANA}/tasks/1200", ASANA_HEADERS, 200, JSON, dumps(ASANA_TASK))


def test_error_response_without_errors_list_fails(asana):
    assert asana.check_response(
        "GET", f"{ASANA}/tasks/1200", ASANA_HEADERS, 404, JSON, dumps({"message": "x"})
    )


def test_response_type_mismatch_and_undeclared_status_fail(asana):
    wrong = dumps({"data": {**ASANA_TASK, "completed": "no"}})
    problems = asana.check_response("GET", f"{ASANA}/tasks/1200", ASANA_HEADERS, 200, JSON, wrong)
    assert any("$.data.completed" in p for p in problems), problems
    teapot = dumps({"errors": [{"message": "teapot"}]})
    assert asana.check_response("GET", f"{ASANA}/tasks/1200", ASANA_HEADERS, 418, JSON, teapot)
