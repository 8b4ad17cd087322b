"""OAuth (password grant, rotating refresh tokens), cookie sessions, seats, 401 handling, secrets."""

from __future__ import annotations

import logging

import pytest
from django.db import connection as db_connection

from audit.models import ApiCall
from integrations.base import errors
from integrations.models import AcumaticaConnection

from .conftest import make_connection


def raw_column(pk: int, column: str) -> str:
    with db_connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM integrations_acumaticaconnection WHERE id = %s", [pk])
        value = cur.fetchone()[0]
    return value.decode() if isinstance(value, bytes | memoryview) else str(value)


def token_calls(sim) -> int:
    return sum(1 for m, p, _s in sim.request_log if p == "/identity/connect/token")


def test_password_grant_caches_token_and_persists_it_encrypted(client, connection, mounted):
    list(client.iter_bills(page_size=50))
    client.get_bill("Bill", "000001")
    assert token_calls(mounted) == 1  # cached until expiry
    row = AcumaticaConnection.objects.get(pk=connection.pk)
    assert row.access_token in mounted.access_tokens
    assert row.refresh_token in mounted.refresh_tokens
    assert row.token_expires_at is not None
    assert row.refresh_token not in raw_column(connection.pk, "refresh_token")
    assert row.access_token not in raw_column(connection.pk, "access_token")


def test_expiry_refreshes_with_rotated_refresh_token_persisted(client, connection, mounted):
    client.get_vendor("ABCCONCRETE")
    first_refresh = AcumaticaConnection.objects.get(pk=connection.pk).refresh_token
    mounted.expire_access_tokens()
    client.auth.expires_at = None  # the client knows its token has expired: refresh before the call
    client.get_vendor("ABCCONCRETE")
    row = AcumaticaConnection.objects.get(pk=connection.pk)
    assert row.refresh_token != first_refresh
    assert first_refresh in mounted.revoked_refresh_tokens  # the old one was used once and revoked
    assert row.refresh_token in mounted.refresh_tokens
    assert row.refresh_token not in raw_column(connection.pk, "refresh_token")
    assert len(mounted.grants) == 1  # a refresh keeps the same seat


def test_unexpected_401_reauthenticates_once_then_succeeds(client, connection, mounted):
    client.get_vendor("ABCCONCRETE")
    mounted.expire_access_tokens()  # the server dropped the token; the client still thinks it is valid
    vendor = client.get_vendor("ABCCONCRETE")
    assert vendor["VendorName"] == "ABC Concrete Supply"
    assert [s for m, p, s in mounted.request_log if p.endswith("/Vendor/ABCCONCRETE")] == [200, 401, 200]
    assert token_calls(mounted) == 2


def test_401_twice_is_auth_failed(client, mounted):
    mounted.faults.add("status", path=r"/Vendor/", status=401, times=2)
    with pytest.raises(errors.AuthFailed) as info:
        client.get_vendor("ABCCONCRETE")
    assert "OAuth 2.0 password grant" in str(info.value)


def test_authorization_code_mode_uses_and_rotates_the_stored_refresh_token(tenant, mounted, make_client):
    refresh = mounted.grant_authorization_code("connector")
    conn = make_connection(tenant, auth_mode="oauth_code", username="", password="", refresh_token=refresh)
    client = make_client(conn)
    assert client.get_vendor("STEELWORKS")["VendorName"] == "Tri-County Steelworks"
    stored = AcumaticaConnection.objects.get(pk=conn.pk).refresh_token
    assert stored != refresh and stored in mounted.refresh_tokens
    # a second client (another worker) starting from the database uses the newest token
    again = make_client(AcumaticaConnection.objects.get(pk=conn.pk))
    again.auth.expires_at = None
    again.get_vendor("STEELWORKS")
    assert AcumaticaConnection.objects.get(pk=conn.pk).refresh_token in mounted.refresh_tokens


def test_revoked_refresh_token_in_code_mode_is_auth_failed(tenant, mounted, make_client):
    conn = make_connection(tenant, auth_mode="oauth_code", refresh_token="rt_revoked_long_ago")
    with pytest.raises(errors.AuthFailed, match="refresh token was rejected"):
        make_client(conn).get_vendor("STEELWORKS")


def test_wrong_client_secret_names_the_oauth_client(tenant, make_client):
    conn = make_connection(tenant, client_secret="wrong-secret-123")
    with pytest.raises(errors.AuthFailed, match="OAuth client was rejected"):
        make_client(conn).get_vendor("STEELWORKS")


def test_wrong_password_names_the_user_password(tenant, make_client):
    conn = make_connection(tenant, password="not-the-password")
    with pytest.raises(errors.AuthFailed, match="user name or password of 'connector'"):
        make_client(conn).get_vendor("STEELWORKS")


def test_oauth_seat_limit_is_seats_exhausted_not_bad_password(client, mounted):
    mounted.occupy_seats(2)
    with pytest.raises(errors.SeatsExhausted) as info:
        client.get_vendor("STEELWORKS")
    assert info.value.retryable and info.value.retry_after
    assert "password" not in info.value.message.lower()


def test_cookie_session_logs_in_once_and_out_in_finally(tenant, mounted, make_client):
    client = make_client(make_connection(tenant, auth_mode="cookie"))
    with client.session_scope():
        bills = list(client.iter_bills())
        client.get_bill(bills[0]["Type"], bills[0]["ReferenceNbr"])
        assert len(mounted.sessions) == 1
    paths = [p for _m, p, _s in mounted.request_log]
    assert paths.count("/entity/auth/login") == 1
    assert paths.count("/entity/auth/logout") == 1
    assert mounted.sessions == {}
    assert not client.session.cookies


def test_cookie_logout_happens_even_when_the_work_fails(tenant, mounted, make_client):
    client = make_client(make_connection(tenant, auth_mode="cookie"))
    with pytest.raises(errors.NotFound), client.session_scope():
        client.get_bill("Bill", "999999")
    assert [p for _m, p, _s in mounted.request_log][-1] == "/entity/auth/logout"
    assert mounted.sessions == {}


def test_cookie_call_outside_a_scope_still_signs_out(tenant, mounted, make_client):
    client = make_client(make_connection(tenant, auth_mode="cookie"))
    client.get_vendor("ABCCONCRETE")
    assert mounted.sessions == {}


def test_cookie_seat_limit_and_bad_password(tenant, mounted, make_client):
    mounted.occupy_seats(2)
    client = make_client(make_connection(tenant, auth_mode="cookie"))
    with pytest.raises(errors.SeatsExhausted, match="sign out other API sessions"):
        client.get_vendor("ABCCONCRETE")
    mounted.occupy_seats(0)
    bad = make_client(make_connection(Tenant_for(tenant), auth_mode="cookie", password="nope-nope"))
    with pytest.raises(errors.AuthFailed, match="user password"):
        bad.get_vendor("ABCCONCRETE")


def test_no_secret_in_api_calls_or_logs(tenant, connection, mounted, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    client = make_client(connection)
    client.get_vendor("ABCCONCRETE")
    mounted.expire_access_tokens()
    client.get_vendor("ABCCONCRETE")  # 401 → refresh grant
    with pytest.raises(errors.NotFound):
        client.get_bill("Bill", "424242")
    cookie_conn = make_connection(Tenant_for(tenant), auth_mode="cookie")
    make_client(cookie_conn).get_vendor("ABCCONCRETE")
    bad = make_connection(Tenant_for(tenant, "other2"), client_secret="wrong-secret-xyz")
    with pytest.raises(errors.AuthFailed):
        make_client(bad).get_vendor("ABCCONCRETE")

    secrets = {connection.client_secret, connection.password, "wrong-secret-xyz"}
    secrets |= set(mounted.access_tokens) | set(mounted.refresh_tokens) | mounted.revoked_refresh_tokens
    secrets |= set(mounted.sessions)
    assert len(secrets) > 5
    rows = list(ApiCall.objects.values_list("url", "error", "request_excerpt", "response_excerpt"))
    assert rows
    stored = "\n".join("|".join(r) for r in rows) + "\n" + caplog.text
    for secret in secrets:
        assert secret not in stored, secret
    assert any("/identity/connect/token" in r[0] for r in rows)


def Tenant_for(tenant, slug="other"):  # noqa: N802 - a second tenant (one Acumatica connection per tenant)
    from integrations.models import Tenant

    return Tenant.objects.create(slug=slug, name=slug)
