"""`connector check` for Sage 100: reach the agent, prove the signature, say what is readable.

Steps, each one a CheckResult line:
1. TLS + signature: GET /v1/ping (401 → key or secret wrong; a TLS error → certificate, pin or CA);
2. company: the agent's company must equal the connection's `company_code`; agent version and
   backend are reported and the version is saved on the connection (`agent_version`);
3. paused: a drained agent (Sage maintenance, agent doc §9) is reported as a failure to fix later;
4. vendors and GL accounts readable: one page of each (`limit=1`), and the default AP division;
5. the agent's selftest (GET /v1/selftest): every BOI object, method and column it uses exists on the
   customer's install, one vendor, one GL account and the next PO number read; each problem is one line
   with what to configure (agent doc §7).
"""

from __future__ import annotations

from typing import Any

import requests

from integrations.base import errors
from integrations.base.checks import CheckResult

from .client import Sage100Client, client_for


def _explain(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, errors.AuthFailed):
        return (
            f"{text} — the agent refused the API key or signature (check api_key, signing_secret, clock skew)"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "Fingerprints did not match" in text or "SSLError" in text:
        return f"{text} — TLS: the agent certificate is not trusted (check ca_certificate or the pin)"
    return text


def check_sage100(connection: Any, *, client: Sage100Client | None = None) -> list[CheckResult]:
    try:
        client = client or client_for(connection, max_retries=0)
    except errors.ConfigurationError as exc:
        return [CheckResult(False, "configuration", str(exc))]
    try:
        ping = client.ping()
    except (errors.ConnectorError, requests.RequestException) as exc:
        return [CheckResult(False, "agent reachable", f"GET {client.base_url}/v1/ping: {_explain(exc)}")]
    version = str(ping.get("agent_version") or "")
    results = [
        CheckResult(
            True,
            "agent reachable",
            f"GET /v1/ping signed and answered: agent {version or '?'}, backend {ping.get('backend', '?')}, "
            f"Sage server time zone {ping.get('server_tz', '?')}",
        )
    ]
    if version and version != connection.agent_version:
        type(connection).objects.filter(pk=connection.pk).update(agent_version=version)
        connection.agent_version = version
    company = str(ping.get("company") or "")
    if company.upper() != (connection.company_code or "").upper():
        results.append(
            CheckResult(
                False,
                "company",
                f"agent serves company {company!r}, connection expects {connection.company_code!r}",
            )
        )
    else:
        results.append(CheckResult(True, "company", f"{company}"))
    if ping.get("paused"):
        results.append(
            CheckResult(
                False,
                "agent state",
                f"{ping.get('state')}: drained for Sage maintenance; writes wait until POST /v1/admin/resume",
            )
        )
    else:
        results.append(CheckResult(True, "agent state", str(ping.get("state") or "running")))
        results.extend(_reads(client, connection))
        results.extend(_selftest(client))
    return results


def _selftest(client: Sage100Client) -> list[CheckResult]:
    try:
        report = client.selftest()
    except errors.ConnectorError as exc:
        if exc.status == 403:
            detail = (
                'the connector\'s key lacks the selftest scope: add "selftest" to its scopes in agent.toml'
            )
        elif exc.status == 404:
            detail = "this agent has no /v1/selftest: upgrade it, then run check again"
        else:
            detail = _explain(exc)
        return [CheckResult(False, "agent selftest", detail)]
    problems = report.get("problems") or []
    failing = [p for p in problems if p.get("status") not in ("ok", "unverified")]
    unverified = [p for p in problems if p.get("status") == "unverified"]
    out = [
        CheckResult(
            not failing,
            "agent selftest",
            f"{len(report.get('checks') or [])} checks on backend {report.get('backend', '?')}: "
            + (f"{len(failing)} problem(s)" if failing else "objects, methods and columns found")
            + (f", {len(unverified)} not verifiable" if unverified else ""),
        )
    ]
    for p in failing:
        out.append(
            CheckResult(
                False,
                f"selftest {p.get('area', '')} {p.get('item', '')}".strip(),
                f"{p.get('status')}: {p.get('detail', '')} — {p.get('fix', '')}".strip(" —"),
            )
        )
    return out


def _reads(client: Sage100Client, connection: Any) -> list[CheckResult]:
    out: list[CheckResult] = []
    division = connection.default_ap_division or "00"
    for what, call in (
        ("vendors readable", lambda: next(client.search_vendors(division=division, page_size=1), None)),
        ("GL accounts readable", lambda: next(client.list_gl_accounts(page_size=1), None)),
    ):
        try:
            first = call()
        except errors.ConnectorError as exc:
            out.append(CheckResult(False, what, _explain(exc)))
            continue
        if first is None:
            out.append(CheckResult(False, what, f"the agent answered but listed none (division {division})"))
        else:
            label = first.get("id") or first.get("account") or ""
            out.append(
                CheckResult(
                    True,
                    what,
                    f"first: {label} {first.get('name') or first.get('description') or ''}".strip(),
                )
            )
    return out
