"""`connector check` for Acumatica: say what was verified and how.

Steps, each one a CheckResult line:
1. the build and endpoint list (GET {instance}/entity, anonymous) — the build is saved on the
   connection (`build_version`) for diagnostics (reference/acumatica.md §9);
2. the configured endpoint name/version is listed, else the versions that are;
3. authentication in the configured mode; on failure which credential was refused, and for "API
   Login Limit" what the operator can do;
4. read access to Bill, PurchaseOrder and Employee with `$top=1` each (cheap, §6.3);
5. the approve/release actions the tenant offers (`$adHocSchema` `_workflowActions`, actions.py),
   stored on the connection; an action the configuration needs but the tenant lacks fails the line.
The session is signed out at the end (a cookie session in session_scope, an OAuth password-grant
session by `client.close()`), so a check never leaks an API seat. A check signs in even while the
tenant is paused after "API Login Limit" (seats.py) and lifts the pause when it succeeds.
"""

from __future__ import annotations

import contextlib
from typing import Any

from integrations.base import errors
from integrations.base.checks import CheckResult

from . import actions
from .client import AcumaticaClient, EndpointNotListed, client_for

READ_CHECKS = (
    ("Bill", ("Type", "ReferenceNbr")),
    ("PurchaseOrder", ("Type", "OrderNbr")),
    ("Employee", ("EmployeeID",)),
)


def check_acumatica(connection: Any, *, client: AcumaticaClient | None = None) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        client = client or client_for(connection)
    except errors.ConfigurationError as exc:
        return [CheckResult(False, "configuration", str(exc))]
    client.ignore_seat_pause = True
    try:
        return _check(connection, client, results)
    finally:
        with contextlib.suppress(errors.ConnectorError):  # close() logs its own failures
            client.close()


def _check(connection: Any, client: AcumaticaClient, results: list[CheckResult]) -> list[CheckResult]:
    # 1-2. build and endpoint version
    try:
        info = client.discover()
    except errors.ConnectorError as exc:
        return [CheckResult(False, "instance reachable", f"GET {client.instance_url}/entity failed: {exc}")]
    if info.build_version:
        type(connection).objects.filter(pk=connection.pk).update(build_version=info.build_version)
        connection.build_version = info.build_version
    results.append(
        CheckResult(
            True,
            "instance reachable",
            f"GET {client.instance_url}/entity: Acumatica build {info.build_version or '?'}",
        )
    )
    try:
        client.verify_endpoint(info)
    except EndpointNotListed as exc:
        results.append(CheckResult(False, "endpoint version", str(exc)))
        return results
    results.append(
        CheckResult(
            True,
            "endpoint version",
            f"{connection.endpoint_name}/{connection.endpoint_version} is listed ({client.base_url})",
        )
    )

    # 3-4. authentication and read access, in one session
    try:
        with client.session_scope():
            try:
                client.auth.ensure()
            except errors.ConfigurationError as exc:
                results.append(CheckResult(False, "authentication", str(exc)))
                return results
            except errors.SeatsExhausted as exc:
                results.append(
                    CheckResult(False, "authentication", f"{client.auth.describe()}: {exc.message}")
                )
                return results
            except errors.AuthFailed as exc:
                results.append(
                    CheckResult(False, "authentication", f"{client.auth.describe()}: {exc.message}")
                )
                return results
            results.append(CheckResult(True, "authentication", f"signed in by {client.auth.describe()}"))
            for entity, keys in READ_CHECKS:
                results.append(_read_check(client, entity, keys))
            results.extend(_action_checks(client, connection))
    except errors.ConnectorError as exc:
        results.append(CheckResult(False, "session", str(exc)))
    return results


def _read_check(client: AcumaticaClient, entity: str, keys: tuple[str, ...]) -> CheckResult:
    what = f"read {entity}"
    try:
        first = next(iter(client.iter(entity, select=keys, page_size=1)), None)
    except errors.Forbidden as exc:
        return CheckResult(False, what, f"no rights to the {entity} form for this user: {exc.message}")
    except errors.SeatsExhausted as exc:
        return CheckResult(False, what, exc.message)
    except errors.ConnectorError as exc:
        return CheckResult(False, what, str(exc))
    sample = "no records yet" if first is None else "found " + "/".join(str(first.get(k)) for k in keys)
    return CheckResult(True, what, f"GET /{entity}?$top=1 answered: {sample}")


def _action_checks(client: AcumaticaClient, connection: Any) -> list[CheckResult]:
    """One line per entity: which approve/release actions the tenant offers, and what is missing."""
    try:
        found = actions.discover(client, connection)
    except errors.ConnectorError as exc:
        return [CheckResult(False, "workflow actions", f"could not read $adHocSchema: {exc}")]
    need = actions.needed(connection)
    out = []
    for entity in actions.ENTITIES:
        names = set(found[entity])
        listed = [a for a in actions.OF_INTEREST[entity] if a in names]
        lacking = [a for a in actions.OF_INTEREST[entity] if a not in names]
        missing_needed = sorted(need[entity] - names)
        detail = f"{entity}/$adHocSchema offers {', '.join(listed) or 'none of the approve/release actions'}"
        if lacking:
            detail += f"; not offered: {', '.join(lacking)}"
        if "Approve" in lacking:
            detail += (
                f" — this tenant cannot approve a {entity} through the API (no approval workflow): "
                "approve in Acumatica, or turn off 'uses approval maps'"
            )
        if missing_needed:
            detail += f"; NEEDED by this tenant's configuration: {', '.join(missing_needed)}"
        out.append(CheckResult(not missing_needed, f"{entity} actions", detail))
    return out
