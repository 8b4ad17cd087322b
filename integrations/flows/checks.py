"""Checking a tenant's connections: configuration first, then each system's own check (read-only calls
that say what was verified and how), the verdict stored on the connection and shown in the console.
`connector check`, the console's "Test connections" action and the demo's first pass use it."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone

from integrations.asana.client import client_for as asana_client
from integrations.base import errors
from integrations.base.checks import CheckResult
from integrations.flows import registry
from integrations.models import CONNECTIONS, AsanaConnection, Flow, Tenant
from mappings.drift import check_flow

ACUMATICA_STOPPERS = ("configuration", "instance reachable", "endpoint version", "authentication")
SYSTEMS = tuple(CONNECTIONS.items())


def check_connection(system: str, conn) -> list[CheckResult]:
    results: list[CheckResult] = []
    try:
        conn.full_clean()
        results.append(CheckResult(True, "configuration", "all fields valid"))
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            results.append(CheckResult(False, f"configuration: {field}", "; ".join(messages)))
        return results
    checker = registry.CHECKS.get(system)
    if checker is not None:
        results.extend(checker(conn))
    # The documents flows' mappings against their Asana projects, once Acumatica itself answered.
    stopped = any(not r.ok and r.what in ACUMATICA_STOPPERS for r in results)
    if system == "acumatica" and not stopped:
        results.extend(mapping_drift(conn))
    return results


def check_tenant(tenant: Tenant) -> dict[str, list[CheckResult]]:
    """Check every connection of a tenant and store each verdict on its connection (shown in the console)."""
    verdicts: dict[str, list[CheckResult]] = {}
    for system, model in SYSTEMS:
        conn = model.objects.filter(tenant=tenant).first()
        if conn is None:
            continue
        results = check_connection(system, conn)
        verdicts[system] = results
        model.objects.filter(pk=conn.pk).update(
            last_checked_at=timezone.now(),
            last_check_ok=all(r.ok for r in results),
            last_check_message="\n".join(f"{'ok' if r.ok else 'FAIL'} {r.what}: {r.detail}" for r in results),
        )
    return verdicts


def mapping_drift(connection: Any) -> list[CheckResult]:
    """Each bills / purchase-orders flow's mappings against its Asana project (mappings/drift.py)."""
    flows = Flow.objects.filter(
        tenant_id=connection.tenant_id,
        enabled=True,
        kind__in=(Flow.Kind.ACUMATICA_BILLS, Flow.Kind.ACUMATICA_PURCHASE_ORDERS),
    )
    if not flows.exists():
        return []
    asana = AsanaConnection.objects.filter(tenant_id=connection.tenant_id).first()
    if asana is None:
        return [CheckResult(False, "mapping drift", "documents flows exist but no Asana connection")]
    out = []
    for flow in flows:
        try:
            report = check_flow(flow, asana_client(asana))
        except (errors.ConnectorError, errors.ConfigurationError) as exc:
            out.append(CheckResult(False, f"mappings of {flow.name}", f"could not read the project: {exc}"))
            continue
        out.append(CheckResult(report.ok, f"mappings of {flow.name}", report.summary()))
    return out
