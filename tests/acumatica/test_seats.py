"""The seat governor against the sandbox's seat-enforcing Acumatica (reference §2.1–§2.3, §6.3): a
rejected refresh signs the old session out before a new password grant, workers never sign in past
the seats, "API Login Limit" pauses the tenant (an hour under OAuth) with one alert, and every session
is signed out at the end."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import Alert
from integrations.acumatica import seats
from integrations.acumatica.check import check_acumatica
from integrations.acumatica.client import client_for
from integrations.base import errors
from integrations.models import AcumaticaConnection, Tenant

from .conftest import make_connection


def paths(sim) -> list[tuple[str, str]]:
    return [(m, p) for m, p, _s in sim.request_log]


def grant_types(sim) -> list[str]:
    return [p for _m, p, _s in sim.request_log if p in ("/identity/connect/token", "/entity/auth/logout")]


def reject_the_stored_refresh_token(conn: AcumaticaConnection) -> None:
    """The stored refresh token is one Acumatica no longer accepts (revoked, used, or past 30 days)."""
    AcumaticaConnection.objects.filter(pk=conn.pk).update(refresh_token="rt_no_longer_valid")


def test_a_rejected_refresh_signs_out_the_old_session_before_the_password_grant(
    connection, mounted, make_client
):
    mounted.hold_seats(1)  # another integration holds one of the trial's two seats
    client = make_client(connection)
    client.get_vendor("ABCCONCRETE")
    assert mounted.seats()["in_use"] == 2
    reject_the_stored_refresh_token(connection)
    client.auth.refresh_token = "rt_no_longer_valid"
    client.auth.expires_at = None  # the token is due: refresh, which Acumatica rejects
    assert client.get_vendor("STEELWORKS")["VendorName"] == "Tri-County Steelworks"
    assert mounted.login_refusals == []  # without the sign-out the password grant hits the limit
    assert grant_types(mounted) == [
        "/identity/connect/token",  # password grant
        "/identity/connect/token",  # refresh: rejected
        "/entity/auth/logout",  # the old session's seat back (§2.1 "sign out using the old token")
        "/identity/connect/token",  # password grant
    ]
    assert mounted.seats()["oauth_sessions"] == 1


def test_a_rejected_refresh_in_code_mode_signs_out_and_asks_for_authorization(tenant, mounted, make_client):
    refresh = mounted.grant_authorization_code("connector")
    conn = make_connection(tenant, auth_mode="oauth_code", username="", password="", refresh_token=refresh)
    client = make_client(conn)
    client.get_vendor("ABCCONCRETE")
    assert mounted.seats()["oauth_sessions"] == 1
    mounted.revoke_access()  # the administrator revoked the tokens; sign out what can be
    client.auth.expires_at = None
    with pytest.raises(errors.AuthFailed, match="refresh token was rejected"):
        client.get_vendor("ABCCONCRETE")
    assert grant_types(mounted)[-1] == "/entity/auth/logout"
    assert mounted.seats()["in_use"] == 0


def test_api_login_limit_pauses_the_tenant_for_an_hour_with_one_alert(connection, mounted, make_client):
    mounted.hold_seats(2)  # other integrations hold every seat
    client = make_client(connection)
    with pytest.raises(errors.SeatsExhausted) as info:
        client.get_vendor("ABCCONCRETE")
    assert info.value.retry_after == 3600  # an OAuth session holds its seat up to an hour (§2.1)
    assert "10 minutes" not in info.value.message and "an hour" in info.value.message
    row = AcumaticaConnection.objects.get(pk=connection.pk)
    assert row.seats_paused_until > timezone.now() + timedelta(minutes=59)
    refused = len(mounted.login_refusals)

    # Every worker now stays away from the token endpoint until the pause ends.
    for _ in range(3):
        with pytest.raises(errors.SeatsExhausted, match="paused until") as again:
            make_client(AcumaticaConnection.objects.get(pk=connection.pk)).get_vendor("ABCCONCRETE")
        assert 3500 < again.value.retry_after <= 3600
    assert len(mounted.login_refusals) == refused == 1
    alert = Alert.objects.get(tenant=connection.tenant, kind=seats.ALERT_KIND)
    assert alert.resolved_at is None and "API Login Limit" in alert.message and "an hour" in alert.message

    # The operator frees the seats and runs `connector check`: it signs in, resumes, resolves the alert.
    mounted.hold_seats(0)
    results = check_acumatica(
        AcumaticaConnection.objects.get(pk=connection.pk), client=make_client(connection)
    )
    assert next(r for r in results if r.what == "authentication").ok
    assert AcumaticaConnection.objects.get(pk=connection.pk).seats_paused_until is None
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert mounted.seats()["oauth_sessions"] == 0  # the check signed its session out
    assert make_client(AcumaticaConnection.objects.get(pk=connection.pk)).get_vendor("STEELWORKS")


def test_cookie_limit_waits_ten_minutes_and_says_so(tenant, mounted, make_client):
    mounted.hold_seats(2)
    conn = make_connection(tenant, auth_mode="cookie")
    with pytest.raises(errors.SeatsExhausted, match="sign out other API sessions") as info:
        make_client(conn).get_vendor("ABCCONCRETE")
    assert info.value.retry_after == 600 and "10 minutes" in info.value.message


def test_cookie_workers_never_hold_more_sessions_than_max_api_sessions(tenant, mounted, make_client):
    """Two workers with cookie login and max_api_sessions=1: the second waits for the first's seat and
    gives up with a retryable error instead of signing in past the setting."""
    conn = make_connection(tenant, auth_mode="cookie", max_api_sessions=1)
    first, second = make_client(conn), make_client(conn)
    second.max_inline_wait = 2.0
    with first.session_scope():
        first.get_vendor("ABCCONCRETE")
        with pytest.raises(errors.SeatsExhausted, match="max_api_sessions"):
            second.get_vendor("STEELWORKS")
        assert mounted.seats()["cookie_sessions"] == 1
    assert second.get_vendor("STEELWORKS")["VendorID"] == "STEELWORKS"  # the seat is free again
    assert mounted.seats()["cookie_sessions"] == 0 and mounted.login_refusals == []


def serialise_database_work_on_sqlite(monkeypatch) -> threading.RLock:
    """PostgreSQL serialises renewals on the connection's row (select_for_update) and lets readers
    through; the test database on SQLite is one in-memory shared cache that refuses instead of
    waiting ("database table is locked"). There the sections that touch the database take one lock,
    as the file database's write lock and busy timeout do in production. Vendor calls stay parallel."""
    from django.db import connection as db

    from integrations.acumatica.auth import OAuthAuthenticator
    from integrations.acumatica.client import AcumaticaClient

    lock = threading.RLock()
    if db.vendor != "sqlite":
        return lock
    # renew/close: the row-locked sections; _record: the ApiCall row each request writes.
    for cls, name in (
        (OAuthAuthenticator, "renew"),
        (OAuthAuthenticator, "close"),
        (AcumaticaClient, "_record"),
    ):
        original = getattr(cls, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, locked)
    return lock


@pytest.mark.django_db(transaction=True)
def test_four_workers_two_seats_one_foreign_a_rejected_refresh(mounted, monkeypatch):
    """Acceptance (issue 19): the sandbox enforces two seats, another integration holds one, the stored
    refresh token is rejected, and four workers share the connection: never more sessions than seats,
    no lock-out, and every session signed out at the end."""
    tenant = Tenant.objects.create(slug="ridgeline", name="Ridgeline Construction")
    conn = make_connection(tenant)
    mounted.hold_seats(1)
    warm = client_for(conn)
    warm.get_vendor("ABCCONCRETE")  # a session exists (the old one), then its refresh token dies
    reject_the_stored_refresh_token(conn)
    AcumaticaConnection.objects.filter(pk=conn.pk).update(token_expires_at=timezone.now())
    peak = {"sessions": 0}
    original = mounted._token

    def watched_token(req):
        response = original(req)
        peak["sessions"] = max(peak["sessions"], mounted.seats()["in_use"])
        return response

    mounted._token = watched_token
    db_lock = serialise_database_work_on_sqlite(monkeypatch)
    failures: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(n: int) -> None:
        from django.db import connection as db

        try:
            with db_lock:
                client = client_for(AcumaticaConnection.objects.get(pk=conn.pk))
            barrier.wait(timeout=10)
            for vendor in ("ABCCONCRETE", "STEELWORKS", "RIVERLUMBER"):
                client.get_vendor(vendor)
            client.close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    warm.close()

    assert failures == [], [repr(f) for f in failures]
    token_answers = [s for _m, p, s in mounted.request_log if p == "/identity/connect/token"]
    assert 400 in token_answers  # the refresh was rejected…
    assert mounted.login_refusals == []  # …and no sign-in was ever refused: no lock-out
    assert peak["sessions"] <= mounted.seat_limit
    assert mounted.seats() == {
        "limit": 2,
        "in_use": 1,  # only the other integration's seat is left
        "oauth_sessions": 0,
        "cookie_sessions": 0,
        "other_integrations": 1,
        "refused_logins": 0,
    }
    assert AcumaticaConnection.objects.get(pk=conn.pk).seats_paused_until is None
