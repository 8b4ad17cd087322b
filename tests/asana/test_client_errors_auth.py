"""Errors, retries, deprecation headers, secrets, PAT and OAuth against the strict-contract sandbox."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection as db
from django.utils import timezone

from audit.models import ApiCall
from integrations.asana.client import client_for
from integrations.asana.shapes import token_url_for
from integrations.base import errors
from integrations.models import AsanaConnection
from sandbox.asana import DEMO

from .conftest import api_requests

AP = DEMO["ap_project"]


def test_error_message_and_field_errors_parsed(client, mounted):
    mounted.faults.add(
        "status",
        method="GET",
        path="/tasks$",
        status=400,
        body={"errors": [{"message": "project: Missing input", "help": "see docs"}]},
    )
    with pytest.raises(errors.Invalid) as exc:
        list(client.iter_project_tasks(AP))
    assert exc.value.message == "project: Missing input"
    assert exc.value.field_errors == {"project": "Missing input"}
    assert "[asana] 400 Invalid: project: Missing input" in str(exc.value)


def test_500_phrase_is_logged_and_put_in_the_error(client, mounted, caplog):
    mounted.faults.add("status", method="GET", path="/users/me", status=500, times=10)
    with (
        caplog.at_level(logging.WARNING, logger="integrations.asana.client"),
        pytest.raises(errors.Unavailable) as exc,
    ):
        client.me()
    assert exc.value.vendor_code == "6 sad squid snuggle softly"
    assert "(phrase: 6 sad squid snuggle softly)" in str(exc.value)
    assert "6 sad squid snuggle softly" in caplog.text


def test_5xx_on_get_is_retried(client, mounted, clock):
    mounted.faults.add("status", method="GET", path="/users/me", status=503, times=2)
    assert client.me()["gid"] == DEMO["connector_user"]
    assert len(api_requests(mounted, "GET", "/users/me")) == 3
    assert len(clock.slept) == 2


def test_5xx_on_post_is_not_retried_and_outcome_unknown(client, mounted):
    mounted.faults.add("status", method="POST", path="/tasks$", status=500)
    with pytest.raises(errors.Unavailable) as exc:
        client.create_task(name="x", project_gid=AP)
    assert exc.value.outcome_unknown
    assert len(api_requests(mounted, "POST", "/tasks")) == 1


def test_post_applied_but_answer_lost_is_outcome_unknown_and_exists_once(client, mounted):
    mounted.faults.add("drop_after_write", method="POST", path="/tasks$")
    with pytest.raises(errors.Unavailable) as exc:
        client.create_task(name="Bill 7", project_gid=AP)
    assert exc.value.outcome_unknown
    assert [t["name"] for t in mounted.tasks.values()] == ["Bill 7"]


def test_429_honours_retry_after_with_the_fake_sleep(client, mounted, clock):
    mounted.faults.add("status", method="GET", path="/users/me", status=429, retry_after=2)
    assert client.me()["gid"] == DEMO["connector_user"]
    assert clock.slept == [2.0]


def test_long_retry_after_raises_rate_limited_with_the_delay(client, mounted, clock):
    mounted.faults.add("status", method="POST", path="/tasks$", status=429, retry_after=120)
    with pytest.raises(errors.RateLimited) as exc:
        client.create_task(name="x", project_gid=AP)
    assert exc.value.retry_after == 120
    assert clock.slept == [] and not mounted.tasks


def test_html_502_body_gives_a_typed_error_with_a_readable_excerpt(client, mounted):
    html = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
    mounted.faults.add("status", method="GET", path="/users/me", status=502, body=html, times=10)
    with pytest.raises(errors.Unavailable) as exc:
        client.me()
    assert exc.value.status == 502
    assert "<h1>" not in exc.value.body_excerpt and "502 Bad Gateway" in exc.value.body_excerpt


def test_truncated_json_gives_unexpected_response(client, mounted):
    mounted.faults.add("status", method="GET", path="/users/me", status=200, body='{"data": {"gid": "12')
    with pytest.raises(errors.UnexpectedResponse):
        client.me()


def test_asana_change_header_logged_once_per_value(client, mounted, caplog):
    mounted.change_headers = ["name=new_user_task_lists;info=https://forum.asana.com/t/x;affected=true"]
    with caplog.at_level(logging.WARNING, logger="integrations.asana.client"):
        client.me()
        client.me()
    hits = [r for r in caplog.records if "Asana-Change" in r.getMessage()]
    assert len(hits) == 1 and "new_user_task_lists" in hits[0].getMessage()


def test_bad_pat_names_the_credential(connection, mounted, clock):
    AsanaConnection.objects.filter(pk=connection.pk).update(personal_access_token="wrong-token-123456")
    connection.refresh_from_db()
    client = client_for(connection, rate_limiter=None, sleep=clock.sleep)
    with pytest.raises(errors.AuthFailed, match="personal access token rejected"):
        client.me()


def test_no_token_in_api_call_rows_or_logs(client, mounted, caplog):
    with caplog.at_level(logging.DEBUG):
        client.me()
        mounted.faults.add(
            "status",
            method="GET",
            path="/users/me",
            status=401,
            body={"errors": [{"message": f"Not Authorized {DEMO['pat']}"}]},
        )
        with pytest.raises(errors.AuthFailed):
            client.me()
    rows = list(ApiCall.objects.values_list("url", "error", "request_excerpt", "response_excerpt"))
    assert rows and all(DEMO["pat"] not in " ".join(map(str, row)) for row in rows)
    assert DEMO["pat"] not in caplog.text


# ---- OAuth ----------------------------------------------------------------------------------------


@pytest.fixture
def oauth_connection(tenant, sim):
    access, refresh = sim.issue_oauth_tokens(DEMO["connector_user"], DEMO["oauth_client_id"])
    return AsanaConnection.objects.create(
        tenant=tenant,
        auth_mode="oauth",
        client_id=DEMO["oauth_client_id"],
        client_secret=DEMO["oauth_client_secret"],
        access_token=access,
        refresh_token=refresh,
        token_expires_at=timezone.now() + timedelta(hours=1),
        workspace_gid=DEMO["workspace"],
        connector_user_gid=DEMO["connector_user"],
    )


def _raw(column: str, pk: int) -> str:
    with db.cursor() as cur:
        cur.execute(f"SELECT {column} FROM integrations_asanaconnection WHERE id = %s", [pk])  # noqa: S608
        value = cur.fetchone()[0]
    return bytes(value).decode("latin-1") if not isinstance(value, str) else value


def test_token_url_derived_from_the_api_host():
    assert token_url_for("https://app.asana.com/api/1.0") == "https://app.asana.com/-/oauth_token"
    assert token_url_for("http://127.0.0.1:8123/api/1.0") == "http://127.0.0.1:8123/-/oauth_token"


def test_oauth_refresh_on_expiry_persists_encrypted_tokens(oauth_connection, mounted, clock):
    AsanaConnection.objects.filter(pk=oauth_connection.pk).update(
        token_expires_at=timezone.now() - timedelta(1)
    )
    oauth_connection.refresh_from_db()
    old_access = oauth_connection.access_token
    client = client_for(oauth_connection, rate_limiter=None, sleep=clock.sleep)
    assert client.me()["gid"] == DEMO["connector_user"]
    token_calls = [r for r in mounted.requests if r.path == "/-/oauth_token"]
    assert len(token_calls) == 1
    stored = AsanaConnection.objects.get(pk=oauth_connection.pk)
    assert stored.access_token != old_access and stored.access_token in mounted.tokens
    assert stored.token_expires_at > timezone.now() + timedelta(minutes=50)
    raw = _raw("access_token", oauth_connection.pk)
    assert stored.access_token not in raw and raw  # ciphertext in the column
    assert oauth_connection.refresh_token not in _raw("refresh_token", oauth_connection.pk)


def test_oauth_refresh_after_401_once_then_retry(oauth_connection, mounted, clock):
    mounted.expire_access_tokens()  # Asana says 401 although our clock thinks the token is fine
    client = client_for(oauth_connection, rate_limiter=None, sleep=clock.sleep)
    assert client.me()["gid"] == DEMO["connector_user"]
    me_calls = [r.headers["Authorization"] for r in api_requests(mounted, "GET", "/users/me")]
    assert len(me_calls) == 2 and me_calls[0] != me_calls[1]
    assert len([r for r in mounted.requests if r.path == "/-/oauth_token"]) == 1
    # A second 401 right after the refresh is not refreshed again: AuthFailed.
    mounted.faults.add(
        "status",
        method="GET",
        path="/users/me",
        status=401,
        times=2,
        body={"errors": [{"message": "Not Authorized"}]},
    )
    with pytest.raises(errors.AuthFailed):
        client.me()
    assert len([r for r in mounted.requests if r.path == "/-/oauth_token"]) == 2


def test_oauth_rotated_refresh_token_is_stored(oauth_connection, mounted, clock):
    mounted.rotate_refresh_tokens = True
    mounted.expire_access_tokens()
    client = client_for(oauth_connection, rate_limiter=None, sleep=clock.sleep)
    client.me()
    stored = AsanaConnection.objects.get(pk=oauth_connection.pk)
    assert (
        stored.refresh_token != oauth_connection.refresh_token
        or stored.refresh_token in mounted.refresh_tokens
    )
    assert stored.refresh_token in mounted.refresh_tokens


def test_revoked_refresh_token_names_the_oauth_refresh_credential(oauth_connection, mounted, clock):
    mounted.revoke_token(oauth_connection.refresh_token)
    mounted.expire_access_tokens()
    client = client_for(oauth_connection, rate_limiter=None, sleep=clock.sleep)
    with pytest.raises(errors.AuthFailed, match="OAuth refresh token was rejected"):
        client.me()
    rows = " ".join(
        " ".join(map(str, r)) for r in ApiCall.objects.values_list("request_excerpt", "response_excerpt")
    )
    assert oauth_connection.refresh_token not in rows and DEMO["oauth_client_secret"] not in rows


def test_second_worker_adopts_the_token_another_worker_refreshed(oauth_connection, mounted, clock):
    mounted.rotate_refresh_tokens = True
    mounted.expire_access_tokens()
    worker_a = client_for(
        AsanaConnection.objects.get(pk=oauth_connection.pk), rate_limiter=None, sleep=clock.sleep
    )
    worker_b = client_for(
        AsanaConnection.objects.get(pk=oauth_connection.pk), rate_limiter=None, sleep=clock.sleep
    )
    worker_a.me()  # refreshes; the refresh token rotates
    assert worker_b.me()["gid"] == DEMO["connector_user"]  # 401 -> finds A's fresh token in the DB
    assert len([r for r in mounted.requests if r.path == "/-/oauth_token"]) == 1
