"""The one client factory: the vendor clients a flow step uses for a tenant.

Every flow asks `clients_for(tenant)` at call time (tests, benchmarks and the soak replace this function
with sandbox clients: monkeypatch `integrations.flows.clients.clients_for`). A client is built on first
use, so a tenant without a Sage 100 connection can still run its Acumatica flows, and the other way
round; asking for a system the tenant has not configured raises ConfigurationError with its name.
"""

from __future__ import annotations

from typing import Any

from integrations.base import errors

_UNSET: Any = object()


class Clients:
    def __init__(
        self, tenant: Any = None, *, asana: Any = _UNSET, acumatica: Any = _UNSET, sage: Any = _UNSET
    ):
        self.tenant = tenant
        self._built: dict[str, Any] = {
            name: value
            for name, value in (("asana", asana), ("acumatica", acumatica), ("sage", sage))
            if value is not _UNSET
        }

    def _get(self, name: str) -> Any:
        if name not in self._built:
            self._built[name] = _build(self.tenant, name)
        return self._built[name]

    @property
    def asana(self) -> Any:
        return self._get("asana")

    @property
    def acumatica(self) -> Any:
        """None when the tenant has no Acumatica connection (the Sage-only flows never ask for it)."""
        return self._get("acumatica")

    @property
    def sage(self) -> Any:
        return self._get("sage")


def _build(tenant: Any, name: str) -> Any:
    if tenant is None:
        raise errors.ConfigurationError(f"no {name} client was given and there is no tenant to build one")
    if name == "asana":
        from integrations.asana.client import client_for

        if not hasattr(tenant, "asana"):
            raise errors.ConfigurationError(f"tenant {tenant.slug} has no Asana connection")
        return client_for(tenant.asana)
    if name == "acumatica":
        from integrations.acumatica.client import client_for

        return client_for(tenant.acumatica) if hasattr(tenant, "acumatica") else None
    from integrations.sage100.client import client_for

    if not hasattr(tenant, "sage100"):
        raise errors.ConfigurationError(f"tenant {tenant.slug} has no Sage 100 connection")
    return client_for(tenant.sage100)


def clients_for(tenant: Any) -> Clients:
    return Clients(tenant)
