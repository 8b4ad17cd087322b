"""`connector check` for Acumatica against the sandbox: what it verified and how, and the exit code."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from integrations.models import AcumaticaConnection

from .conftest import make_connection


def run_check(slug: str) -> tuple[str, str, int]:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("connector", "check", "--tenant", slug, stdout=out, stderr=err)
    except CommandError as exc:
        code = exc.returncode
    return out.getvalue(), err.getvalue(), code


def test_check_ok_reports_each_step_and_saves_the_build(tenant, connection, mounted):
    out, err, code = run_check("ridgeline")
    assert code == 0, err
    assert "acumatica: OK" in out
    assert "Acumatica build 24.208.0012" in out
    assert "Default/24.200.001 is listed" in out
    assert "signed in by OAuth 2.0 password grant" in out
    for entity in ("Bill", "PurchaseOrder", "Employee"):
        assert f"[ok] read {entity}: GET /{entity}?$top=1 answered: found" in out
    row = AcumaticaConnection.objects.get(pk=connection.pk)
    assert row.build_version == "24.208.0012" and row.last_check_ok is True
    assert not mounted.sessions


def test_check_wrong_version_lists_the_available_ones(tenant, mounted):
    make_connection(tenant, endpoint_version="25.100.001")
    out, err, code = run_check("ridgeline")
    assert code == 1
    assert "[FAIL] endpoint version" in err
    assert "versions listed for Default: 20.200.001, 22.200.001, 23.200.001, 24.200.001" in err
    assert not any(p.endswith("/identity/connect/token") for _m, p, _s in mounted.request_log)


def test_check_bad_password_names_the_credential(tenant, mounted):
    make_connection(tenant, password="wrong-password")
    out, err, code = run_check("ridgeline")
    assert code == 1
    assert "[FAIL] authentication" in err and "user name or password of 'connector' was rejected" in err
    assert "wrong-password" not in out + err


def test_check_bad_client_secret_names_the_oauth_client(tenant, mounted):
    make_connection(tenant, client_secret="wrong-client-secret")
    out, err, code = run_check("ridgeline")
    assert code == 1 and "OAuth client was rejected" in err


def test_check_seat_limit_says_what_to_do(tenant, mounted):
    make_connection(tenant, auth_mode="cookie")
    mounted.occupy_seats(2)
    out, err, code = run_check("ridgeline")
    assert code == 1
    assert "API Login Limit" in err and "sign out other API sessions" in err
    assert "Maximum Number of Web Services API Users" in err


def test_check_cookie_mode_signs_out(tenant, mounted):
    make_connection(tenant, auth_mode="cookie")
    out, err, code = run_check("ridgeline")
    assert code == 0, err
    assert "cookie login as 'connector'" in out
    paths = [p for _m, p, _s in mounted.request_log]
    assert paths.count("/entity/auth/login") == 1 and paths.count("/entity/auth/logout") == 1


@pytest.mark.parametrize("status", [403])
def test_check_no_rights_on_a_form(tenant, connection, mounted, status):
    mounted.faults.add(
        "status",
        method="GET",
        path=r"/PurchaseOrder$",
        status=status,
        body={"message": "You have insufficient rights to access the object (PO301000)."},
    )
    out, err, code = run_check("ridgeline")
    assert code == 1
    assert "[ok] read Bill" in out and "[FAIL] read PurchaseOrder: no rights" in err
