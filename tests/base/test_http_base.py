"""The HTTP base: retries, backoff, Retry-After, POST safety, typed errors, redacted ApiCall rows."""

import logging

import pytest
import requests
import responses

from audit.models import ApiCall
from integrations.base import errors
from integrations.base.http import HttpClient, paginate

BASE = "https://api.vendor.example/v1"
TOKEN = "tok-very-secret-123456"


class VendorClient(HttpClient):
    system = "vendor"

    def __post_init__(self):
        super().__post_init__()
        self.token = TOKEN
        self.reauths = 0
        self.register_secrets(self.token)

    def apply_auth(self, headers):
        headers["Authorization"] = f"Bearer {self.token}"

    def reauthenticate(self):
        self.reauths += 1
        self.token = "tok-refreshed-654321"
        self.register_secrets(self.token)
        return True


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(db, sleeps):
    return VendorClient(BASE, sleep=sleeps.append, max_retries=3, max_inline_wait=5.0)


@responses.activate
def test_429_with_retry_after_sleeps_then_succeeds(client, sleeps):
    responses.get(f"{BASE}/things", status=429, headers={"Retry-After": "2"})
    responses.get(f"{BASE}/things", json={"ok": True})
    assert client.request("GET", "/things").json() == {"ok": True}
    assert sleeps == [2.0]
    assert list(ApiCall.objects.order_by("id").values_list("status_code", "attempt")) == [(429, 1), (200, 2)]


@responses.activate
def test_long_retry_after_raises_retryable_with_delay(client, sleeps):
    responses.get(f"{BASE}/things", status=429, headers={"Retry-After": "120"})
    with pytest.raises(errors.RateLimited) as exc_info:
        client.request("GET", "/things")
    assert exc_info.value.retry_after == 120.0
    assert exc_info.value.retryable
    assert sleeps == []


@responses.activate
def test_429_without_retry_after_backs_off_exponentially_with_jitter(client, sleeps):
    for _ in range(3):
        responses.get(f"{BASE}/things", status=429)
    responses.get(f"{BASE}/things", json={})
    client.request("GET", "/things")
    assert len(sleeps) == 3
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0 and 1.0 <= sleeps[2] <= 2.0


@responses.activate
def test_5xx_on_get_is_retried(client, sleeps):
    responses.get(
        f"{BASE}/things",
        status=503,
        body="<html><body><h1>Service Unavailable</h1></body></html>",
        content_type="text/html",
    )
    responses.get(f"{BASE}/things", json={"ok": 1})
    assert client.request("GET", "/things").json() == {"ok": 1}
    assert len(sleeps) == 1


@responses.activate
def test_5xx_on_post_is_never_retried_and_marks_outcome_unknown(client, sleeps):
    responses.post(
        f"{BASE}/things",
        status=502,
        body="<html><title>Bad gateway</title><p>upstream died</p></html>",
        content_type="text/html",
    )
    with pytest.raises(errors.Unavailable) as exc_info:
        client.request("POST", "/things", json_body={"a": 1})
    err = exc_info.value
    assert err.outcome_unknown and err.status == 502
    assert "upstream died" in err.body_excerpt and "<p>" not in err.body_excerpt
    assert "[vendor] 502 Unavailable" in str(err)
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_post_429_is_retried_because_nothing_was_done(client, sleeps):
    responses.post(f"{BASE}/things", status=429, headers={"Retry-After": "1"})
    responses.post(f"{BASE}/things", status=201, json={"id": 7})
    assert client.request("POST", "/things", json_body={}).json() == {"id": 7}


@responses.activate
def test_read_timeout_on_post_is_unknown_outcome(client, sleeps):
    responses.post(f"{BASE}/things", body=requests.ReadTimeout("slow"))
    with pytest.raises(errors.Timeout) as exc_info:
        client.request("POST", "/things", json_body={})
    assert exc_info.value.outcome_unknown
    assert len(responses.calls) == 1
    assert ApiCall.objects.get().error.startswith("[vendor] Timeout")


@responses.activate
def test_connect_timeout_on_post_is_retried(client, sleeps):
    responses.post(f"{BASE}/things", body=requests.ConnectTimeout("no route"))
    responses.post(f"{BASE}/things", status=201, json={})
    client.request("POST", "/things", json_body={})
    assert len(responses.calls) == 2


@responses.activate
def test_401_reauthenticates_once(client):
    responses.get(f"{BASE}/me", status=401, json={"message": "expired"})
    responses.get(f"{BASE}/me", json={"me": 1})
    assert client.request("GET", "/me").json() == {"me": 1}
    assert client.reauths == 1
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok-refreshed-654321"


@responses.activate
def test_401_twice_is_auth_failed(client):
    responses.get(f"{BASE}/me", status=401, json={"message": "bad token"})
    with pytest.raises(errors.AuthFailed, match="bad token"):
        client.request("GET", "/me")
    assert client.reauths == 1


@pytest.mark.parametrize(
    "status,klass",
    [
        (400, errors.Invalid),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (422, errors.Invalid),
        (423, errors.Locked),
        (418, errors.PermanentError),
    ],
)
@responses.activate
def test_status_picks_error_class(client, status, klass):
    responses.put(f"{BASE}/x", status=status, json={"errors": [{"message": f"vendor says {status}"}]})
    with pytest.raises(klass, match=f"vendor says {status}"):
        client.request("PUT", "/x", json_body={}, idempotent=False)


@responses.activate
def test_json_of_truncated_body_is_unexpected_response(client):
    responses.get(f"{BASE}/x", body='{"data": [1, 2', content_type="application/json")
    response = client.request("GET", "/x")
    with pytest.raises(errors.UnexpectedResponse) as exc_info:
        client.json(response)
    assert exc_info.value.status == 200 and '{"data": [1, 2' in exc_info.value.body_excerpt


@responses.activate
def test_api_call_rows_and_logs_never_hold_secrets(client, caplog):
    caplog.set_level(logging.DEBUG)
    responses.post(
        f"{BASE}/login", status=500, json={"message": f"token {TOKEN} rejected", "password": "pw-123456"}
    )
    with pytest.raises(errors.Unavailable) as exc_info:
        client.request(
            "POST",
            f"/login?access_token={TOKEN}&page=2",
            json_body={"username": "u", "password": "pw-123456", "client_secret": "cs-abcdef"},
        )
    call = ApiCall.objects.get()
    stored = " ".join([call.url, call.request_excerpt, call.response_excerpt, call.error])
    for secret in (TOKEN, "pw-123456", "cs-abcdef"):
        assert secret not in stored
        assert secret not in str(exc_info.value)
    assert "page=2" in call.url and "[redacted]" in call.url
    logging.getLogger("test").warning("leak? %s", TOKEN)
    from integrations.base.redaction import RedactingFilter

    record = caplog.records[-1]
    RedactingFilter().filter(record)
    assert TOKEN not in record.getMessage()


def test_paginate_is_a_lazy_generator():
    fetched = []

    def fetch(cursor):
        page = cursor or 0
        fetched.append(page)
        return [page * 10 + i for i in range(10)], (page + 1 if page < 4 else None)

    gen = paginate(fetch)
    assert next(gen) == 0 and fetched == [0]
    assert len(list(gen)) == 49 and fetched == [0, 1, 2, 3, 4]


@responses.activate
def test_subclass_retry_policy_is_not_overridden_by_the_base(db, sleeps):
    class Locking(VendorClient):
        retry_non_idempotent_on = frozenset({423, 429})
        retry_statuses = frozenset({423, 429})

    client = Locking(BASE, sleep=sleeps.append, max_retries=2)
    assert client.retry_non_idempotent_on == frozenset({423, 429})
    responses.post(f"{BASE}/po", status=423, headers={"Retry-After": "1"})
    responses.post(f"{BASE}/po", status=201, json={"po": "0000100"})
    assert client.request("POST", "/po", json_body={}).json() == {"po": "0000100"}
    assert sleeps == [1.0]
