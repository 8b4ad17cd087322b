"""Acumatica requests and responses against acumatica_default_24.200.001.json plus the documented gaps."""

import pytest
import requests

from sandbox.contract import ContractViolation

from .helpers import ACU, ACU_INSTANCE, BILL, GUID, HTTP_ERROR, JSON, JSON_UTF8, dumps

BEARER = {"Authorization": "Bearer acu-token"}


def prepared(method, url, **kwargs):
    return requests.Request(method, url, **kwargs).prepare()


# ---- requests: what must pass ---------------------------------------------------------------------


def test_list_bills_modified_since_as_requests_encodes_it(acumatica):
    req = prepared(
        "GET",
        f"{ACU}/Bill",
        params={
            "$filter": "LastModifiedDateTime gt datetimeoffset'2026-01-01T00:00:00Z'",
            "$top": 100,
            "$skip": 0,
        },
        headers=BEARER,
    )
    assert "%24filter=" in req.url  # really URL-encoded
    acumatica.validate_prepared_request(req)


def test_list_bills_with_literal_query(acumatica):
    url = f"{ACU}/Bill?$filter=LastModifiedDateTime gt datetimeoffset'2026-01-01T00:00:00Z'&$top=100&$skip=0"
    acumatica.validate_request("GET", url, BEARER, None)


def test_put_bill_with_wrapped_values(acumatica):
    acumatica.validate_request(
        "PUT",
        f"{ACU}/Bill",
        {**BEARER, **JSON},
        dumps({"Type": {"value": "Bill"}, "Vendor": {"value": "V1"}}),
    )


def test_put_bill_with_details_select_and_custom_field(acumatica):
    body = {
        "Type": {"value": "Bill"},
        "Vendor": {"value": "V1"},
        "VendorRef": {"value": "INV-42"},
        "Date": {"value": "2026-01-15T00:00:00+00:00"},
        "Hold": {"value": False},
        "Description": {"value": "Office chairs"},
        "Details": [
            {
                "Branch": {"value": "MAIN"},
                "Account": {"value": "60000"},
                "TransactionDescription": {"value": "Chairs"},
                "Qty": {"value": 2},
                "UnitCost": {"value": 50.25},
            }
        ],
        "custom": {"Document": {"UsrAsanaTask": {"type": "CustomStringField", "value": "1200"}}},
    }
    url = f"{ACU}/Bill?$select=Type,ReferenceNbr,Status&$expand=Details"
    acumatica.validate_request("PUT", url, {**BEARER, **JSON, "If-None-Match": "*"}, dumps(body))


def test_release_bill_action(acumatica):
    body = {"entity": {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000123"}}}
    acumatica.validate_request("POST", f"{ACU}/Bill/ReleaseBill", {**BEARER, **JSON}, dumps(body))
    acumatica.validate_request(
        "POST", f"{ACU}/Bill/ReleaseBill", {**BEARER, **JSON}, dumps({"entity": {"id": GUID}})
    )


def test_workflow_action_by_name(acumatica):
    body = {"entity": {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000159"}}, "parameters": {}}
    acumatica.validate_request("POST", f"{ACU}/Bill/Approve", {**BEARER, **JSON}, dumps(body))


def test_employees_with_contact_info(acumatica):
    acumatica.validate_request("GET", f"{ACU}/Employee?$expand=ContactInfo", BEARER, None)
    acumatica.validate_request(
        "GET", f"{ACU}/Employee?$expand=ContactInfo&$filter=Status eq 'Active'&$top=100&$skip=100", BEARER
    )


@pytest.mark.parametrize(
    "path",
    ["/Bill/Bill/000123", "/Bill/Credit%20Adj./000124", f"/Bill/{GUID}", "/Employee/EP00000001"],
)
def test_single_record_urls(acumatica, path):
    acumatica.validate_request("GET", f"{ACU}{path}?$select=Status", BEARER)


def test_ad_hoc_schema_takes_no_query(acumatica):
    acumatica.validate_request("GET", f"{ACU}/Bill/$adHocSchema", BEARER)
    assert acumatica.check_request("GET", f"{ACU}/Bill/$adHocSchema?$select=Status", BEARER)


@pytest.mark.parametrize(
    "url",
    [
        "https://erp.example.com/entity/Default/24.200.001/Bill",
        "http://localhost/24r200/entity/Default/24.200.001/Bill",
        "https://erp.example.com/Sites/Acme/entity/Default/24.200.001/Bill",
    ],
)
def test_instance_prefix_is_mapped_onto_spec_server(acumatica, url):
    acumatica.validate_request("GET", url, BEARER)


def test_instance_endpoints_on_allow_list(acumatica):
    login = {"name": "admin", "password": "secret", "tenant": "MyStore", "branch": "MYSTORE"}
    acumatica.validate_request("POST", f"{ACU_INSTANCE}/entity/auth/login", JSON, dumps(login))
    acumatica.validate_request(
        "POST", f"{ACU_INSTANCE}/entity/auth/logout", {"Cookie": "ASP.NET_SessionId=abc"}
    )
    token = prepared(
        "POST",
        f"{ACU_INSTANCE}/identity/connect/token",
        data={
            "grant_type": "password",
            "client_id": "88358B02-A48D-A50E-F710-39C1636C30F6@MyTenant",
            "client_secret": "s",
            "username": "api",
            "password": "p",
            "scope": "api offline_access",
        },
    )
    acumatica.validate_prepared_request(token)
    acumatica.validate_request("GET", f"{ACU_INSTANCE}/entity", {})


def test_action_status_poll_on_allow_list(acumatica):
    acumatica.validate_request("GET", f"{ACU}/Bill/ReleaseBill/status/{GUID}", BEARER)


# ---- requests: what must fail ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [("POST", "/Bill"), ("PATCH", "/Bill"), ("DELETE", "/Bill"), ("PUT", "/Bill/ReleaseBill")],
)
def test_wrong_method_or_shape_fails(acumatica, method, path):
    body = None if method == "DELETE" else dumps({"Type": {"value": "Bill"}})
    with pytest.raises(ContractViolation):
        acumatica.validate_request(method, f"{ACU}{path}", {**BEARER, **JSON}, body)


def test_wrong_method_names_the_allowed_ones(acumatica):
    problems = acumatica.check_request("POST", f"{ACU}/Bill", JSON, dumps({}))
    assert problems == ["method POST not allowed on ['/Bill'] (spec allows ['GET', 'PUT'])"]


@pytest.mark.parametrize("path", ["/Bils", "/APBill/Bill/000123", "/", "/swagger.json"])
def test_unknown_entity_fails(acumatica, path):
    problems = acumatica.check_request("GET", f"{ACU}{path}", BEARER)
    assert problems and "neither in the acumatica spec" in problems[0], problems


def test_other_endpoint_version_fails(acumatica):
    problems = acumatica.check_request(
        "GET", "https://erp.example.com/entity/Default/23.200.001/Bill", BEARER
    )
    assert problems == ["no spec for endpoint Default/23.200.001; the contract covers Default/24.200.001"]


@pytest.mark.parametrize(
    "url",
    [
        f"{ACU_INSTANCE}/entity/auth/session",
        f"{ACU_INSTANCE}/identity/connect/authorize",
        f"{ACU_INSTANCE}/api/Bill",
        f"{ACU}/Bils/ReleaseBill/status/{GUID}",
    ],
)
def test_instance_urls_not_on_allow_list_fail(acumatica, url):
    assert acumatica.check_request("GET", url, BEARER)


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"Type": {"value": "Bill"}, "VendorID": {"value": "V1"}}, "$.VendorID: property not in the spec"),
        ({"Vendor": "V1"}, "is not of type 'object'"),
        ({"Amount": {"value": "lots"}}, "is not of type 'number'"),
        ({"Date": {"value": "2026-01-15T00:00:00"}}, "date-time"),
        ({"Details": [{"Account": {"value": "60000"}, "Amont": {"value": 1}}]}, "$.Details[0].Amont"),
    ],
)
def test_invalid_bill_bodies_fail(acumatica, body, fragment):
    problems = acumatica.check_request("PUT", f"{ACU}/Bill", {**BEARER, **JSON}, dumps(body))
    assert any(fragment in p for p in problems), problems


def test_release_bill_without_entity_fails(acumatica):
    problems = acumatica.check_request(
        "POST", f"{ACU}/Bill/ReleaseBill", {**BEARER, **JSON}, dumps({"Type": {"value": "Bill"}})
    )
    assert any("'entity' is a required property" in p for p in problems), problems


@pytest.mark.parametrize(
    "query, fragment",
    [
        ("$orderby=Date", "'$orderby' is not declared"),
        ("$top=abc", "$top"),
        ("filter=x", "'filter' is not declared"),
    ],
)
def test_bad_query_parameters_fail(acumatica, query, fragment):
    problems = acumatica.check_request("GET", f"{ACU}/Bill?{query}", BEARER)
    assert any(fragment in p for p in problems), problems


def test_login_without_password_fails(acumatica):
    assert acumatica.check_request(
        "POST", f"{ACU_INSTANCE}/entity/auth/login", JSON, dumps({"name": "admin"})
    )


def test_body_on_get_fails(acumatica):
    assert acumatica.check_request(
        "GET", f"{ACU}/Bill", {**BEARER, **JSON}, dumps({"Type": {"value": "Bill"}})
    )


# ---- responses ------------------------------------------------------------------------------------


def test_bill_responses_validate(acumatica):
    acumatica.validate_response("GET", f"{ACU}/Bill?$top=100", BEARER, 200, JSON_UTF8, dumps([BILL]))
    acumatica.validate_response("GET", f"{ACU}/Bill/Bill/000123", BEARER, 200, JSON_UTF8, dumps(BILL))
    acumatica.validate_response("GET", f"{ACU}/Bill/{GUID}", BEARER, 200, JSON_UTF8, dumps(BILL))
    acumatica.validate_response("PUT", f"{ACU}/Bill", BEARER, 200, JSON_UTF8, dumps(BILL))


def test_employee_response_validates(acumatica):
    employee = {
        "id": GUID,
        "EmployeeID": {"value": "EP00000001"},
        "EmployeeName": {"value": "Maria Lopez"},
        "Status": {"value": "Active"},
        "LastModifiedDateTime": {"value": "2026-01-02T10:00:00+00:00"},
        "ContactInfo": {
            "FirstName": {"value": "Maria"},
            "LastName": {"value": "Lopez"},
            "Email": {"value": "m@x.io"},
        },
    }
    acumatica.validate_response(
        "GET", f"{ACU}/Employee?$expand=ContactInfo", BEARER, 200, JSON, dumps([employee])
    )


def test_error_responses_validate(acumatica):
    acumatica.validate_response("GET", f"{ACU}/Bill/Bill/999", BEARER, 500, JSON, dumps(HTTP_ERROR))
    acumatica.validate_response(
        "GET", f"{ACU}/Bill", {}, 401, JSON, dumps({"message": "You are not logged in."})
    )
    entity_echo = {**BILL, "error": "Inserting 'AP Transactions' record raised at least one error."}
    acumatica.validate_response("PUT", f"{ACU}/Bill", BEARER, 422, JSON, dumps(entity_echo))
    # gap ACU-UNDECLARED-ERRORS: 429 (plain text allowed), 403, 404
    acumatica.validate_response(
        "GET", f"{ACU}/Bill", BEARER, 429, {"Content-Type": "text/plain"}, b"API Login Limit"
    )
    acumatica.validate_response("GET", f"{ACU}/Bill", BEARER, 403, JSON, dumps({"message": "Access denied."}))
    acumatica.validate_response(
        "POST", f"{ACU}/Bill/Nope", BEARER, 404, JSON, dumps({"message": "No action."})
    )


def test_action_and_status_responses_validate(acumatica):
    location = {"Location": f"{ACU}/Bill/ReleaseBill/status/{GUID}"}
    acumatica.validate_response("POST", f"{ACU}/Bill/ReleaseBill", BEARER, 202, location, b"")
    acumatica.validate_response(
        "POST", f"{ACU}/Bill/ReleaseBill", BEARER, 204, {"Location": f"{ACU}/Bill/{GUID}"}, b""
    )
    acumatica.validate_response("GET", f"{ACU}/Bill/ReleaseBill/status/{GUID}", BEARER, 202, {}, b"")
    acumatica.validate_response("GET", f"{ACU}/Bill/ReleaseBill/status/{GUID}", BEARER, 204, {}, b"")


def test_instance_endpoint_responses_validate(acumatica):
    acumatica.validate_response(
        "POST", f"{ACU_INSTANCE}/entity/auth/login", JSON, 204, {"Set-Cookie": "a=b"}, b""
    )
    acumatica.validate_response(
        "POST",
        f"{ACU_INSTANCE}/entity/auth/login",
        JSON,
        429,
        {"Content-Type": "text/plain"},
        b"API Login Limit",
    )
    endpoints = {
        "version": {"acumaticaBuildVersion": "24.200.0123", "databaseVersion": "24.200.0123"},
        "endpoints": [
            {"name": "Default", "version": "24.200.001", "href": "/AcumaticaDB/entity/Default/24.200.001/"}
        ],
    }
    acumatica.validate_response("GET", f"{ACU_INSTANCE}/entity", {}, 200, JSON, dumps(endpoints))
    token = {
        "access_token": "t",
        "expires_in": 3600,
        "token_type": "Bearer",
        "scope": "api",
        "refresh_token": "r",
    }
    acumatica.validate_response("POST", f"{ACU_INSTANCE}/identity/connect/token", {}, 200, JSON, dumps(token))


@pytest.mark.parametrize(
    "method, path, status, headers, body",
    [
        ("GET", "/Bill/Bill/000123", 200, JSON, dumps({**BILL, "Amount": {"value": "lots"}})),
        ("GET", "/Bill", 200, JSON, dumps(BILL)),  # a list GET returns an array
        ("POST", "/Bill/ReleaseBill", 200, JSON, dumps(BILL)),  # actions answer 202/204, not 200
        ("GET", "/Bill", 200, {}, b"[]"),  # body without Content-Type
        ("GET", "/Bill", 500, JSON, b"<html>"),  # not JSON
    ],
    ids=["mistyped-field", "object-for-list", "undeclared-status", "no-content-type", "invalid-json"],
)
def test_invalid_responses_fail(acumatica, method, path, status, headers, body):
    with pytest.raises(ContractViolation) as info:
        acumatica.validate_response(method, f"{ACU}{path}", BEARER, status, headers, body)
    assert info.value.kind == "response"
