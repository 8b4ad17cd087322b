"""When the playground exists and which sandboxes it talks to.

Configured = the SANDBOX_PLAYGROUND setting is on (`make run` sets the environment variable). The
sandboxes are the ones the playground tenant (SANDBOX_PLAYGROUND_TENANT, "demo" by default) is
connected to: its Acumatica and Asana connections' URLs, read from the product's models — so a test
serving the sandboxes on other ports needs nothing else. The playground only ever talks to loopback:
a tenant pointed at a real system has no playground.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def enabled() -> bool:
    return bool(getattr(settings, "SANDBOX_PLAYGROUND", False))


def tenant_slug() -> str:
    return getattr(settings, "SANDBOX_PLAYGROUND_TENANT", "") or "demo"


@dataclass(frozen=True)
class Sandboxes:
    acumatica_url: str | None
    asana_url: str | None
    sage_url: str | None


def _loopback(url: str | None) -> str | None:
    if not url:
        return None
    return url.rstrip("/") if (urlsplit(url).hostname or "").lower() in LOOPBACK else None


def sandboxes_of(tenant) -> Sandboxes:
    """The tenant's sandbox base URLs (None for a system it has no loopback connection to)."""
    # A missing one-to-one connection raises RelatedObjectDoesNotExist, an AttributeError: None here.
    acu = getattr(tenant, "acumatica", None)
    asana = getattr(tenant, "asana", None)
    sage = getattr(tenant, "sage100", None)
    return Sandboxes(
        acumatica_url=_loopback(acu.instance_url if acu else None),
        asana_url=_loopback(asana.api_base_url if asana else None),
        sage_url=_loopback(sage.agent_url if sage else None),
    )
