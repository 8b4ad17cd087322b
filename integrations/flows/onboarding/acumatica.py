"""Acumatica during onboarding: the endpoint versions an instance offers, and a credential test that
says what was verified (or why not) the way an operator reads it.

Both reuse the flows' client and `connector check` (integrations/acumatica/check.py): the wizard
signs in, reads one Bill, PurchaseOrder and Employee, reads the approve/release actions the tenant
offers, and signs out again — no seat is kept, nothing is written in Acumatica.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from integrations.acumatica.client import client_for
from integrations.base import errors
from integrations.models import AcumaticaConnection

# What each check line means to an operator, and what to do when it fails.
ADVICE = {
    "configuration": "correct the field named and test again",
    "instance reachable": "check the instance URL (with its instance path, e.g. /AcumaticaERP) and "
    "that this server can reach it",
    "endpoint version": "pick one of the versions the instance lists",
    "authentication": "check the user, password, OAuth client and tenant (company) name in Acumatica's "
    "Connected Applications (SM303010) and Users (SM201010) screens",
    "read Bill": "give the API user rights to the Bills and Adjustments screen (AP301000)",
    "read PurchaseOrder": "give the API user rights to the Purchase Orders screen (PO301000)",
    "read Employee": "give the API user rights to the Employees screen (EP203000)",
    "session": "try again in a minute; if it persists, sign out idle API sessions in Acumatica (SM201530)",
}


@dataclass
class Endpoints:
    build: str
    versions: dict[str, list[str]] = field(default_factory=dict)

    def default_versions(self) -> list[str]:
        return self.versions.get("Default", [])

    def preferred(self, current: str = "") -> str:
        """The version to offer: the current one when listed, else the newest Default version."""
        listed = self.default_versions()
        if current in listed:
            return current
        return listed[-1] if listed else current


def discover_endpoints(instance_url: str) -> Endpoints:
    """GET {instance}/entity, anonymous: the build and every endpoint name's versions (§1.2)."""
    probe = AcumaticaConnection(instance_url=instance_url, auth_mode="cookie")
    client = client_for(probe)
    try:
        info = client.discover()
    finally:
        client.session.close()
    names = sorted({str(e.get("name") or "") for e in info.endpoints if e.get("name")})
    return Endpoints(info.build_version, {n: info.versions_of(n) for n in names})


@dataclass
class Verdict:
    """One line of a credential test: what was checked, whether it holds, and what to do if not."""

    ok: bool
    what: str
    detail: str
    advice: str = ""

    @property
    def sentence(self) -> str:
        if self.ok:
            return f"Verified — {self.what}: {self.detail}"
        return f"Not verified — {self.what}: {self.detail}" + (
            f". What to do: {self.advice}" if self.advice else ""
        )


def _advice(what: str) -> str:
    for key, text in ADVICE.items():
        if what.startswith(key):
            return text
    if what.endswith("actions"):
        return "enable the approval workflow for that document in Acumatica, or turn off 'uses approval maps'"
    return ""


def verify_credentials(connection: AcumaticaConnection) -> list[Verdict]:
    """Run the Acumatica check now and store its verdict on the connection (shown in the console)."""
    from integrations.acumatica.check import check_acumatica

    try:
        connection.full_clean(exclude=["tenant"])
    except Exception as exc:  # noqa: BLE001 - a ValidationError is shown as the first line
        messages = getattr(exc, "message_dict", {"configuration": [str(exc)]})
        verdicts = [
            Verdict(False, f"configuration: {name}", "; ".join(text), ADVICE["configuration"])
            for name, text in messages.items()
        ]
    else:
        try:
            results = check_acumatica(connection)
        except errors.ConnectorError as exc:  # the checker handles its own; this is a last resort
            results = [type("R", (), {"ok": False, "what": "session", "detail": str(exc)})()]
        verdicts = [Verdict(r.ok, r.what, r.detail, "" if r.ok else _advice(r.what)) for r in results]
    if connection.pk is not None:
        AcumaticaConnection.objects.filter(pk=connection.pk).update(
            last_checked_at=timezone.now(),
            last_check_ok=all(v.ok for v in verdicts),
            last_check_message="\n".join(
                f"{'ok' if v.ok else 'FAIL'} {v.what}: {v.detail}" for v in verdicts
            ),
        )
    return verdicts


def offered_actions(connection: Any) -> dict[str, list[str]]:
    """The actions the last test read from `$adHocSchema` (stored on the connection)."""
    stored = getattr(connection, "workflow_actions", None) or {}
    return {k: v for k, v in stored.items() if isinstance(v, list)}
