"""Where the connector may connect: cloud services never reach the internal network.

`validate_outbound_url` (integrations/validators.py) refuses a literal private address when a URL is
saved through a form. That is not enough on its own: a URL may reach the database another way (`connector
config apply`, a migration, SQL), and a public-looking host name may *resolve* to 169.254.169.254 (the
cloud metadata service), 10.x, 192.168.x, ::ffff:10.0.0.1 or loopback. So every vendor client checks
twice, at request time:

- the URL itself, with the same rules as the forms (https; http only to loopback while
  ALLOW_LOOPBACK_HTTP; no literal private address for a cloud service);
- the addresses the host name resolves to, at the moment the socket is opened (`GuardedAdapter`): every
  address must be public — loopback only while ALLOW_LOOPBACK_HTTP (the sandboxes) — and the
  connection is made to the address that was checked, so a DNS answer that changes in between
  (rebinding) cannot slip through. Redirects are never followed (HttpClient sends
  allow_redirects=False and treats a 3xx as an error), so a redirect cannot point elsewhere.

The Sage 100 agent lives on the customer's LAN: its client sets `private_network_allowed` and is not
guarded. Behind a forward proxy (HTTPS_PROXY) the proxy resolves the name; the guard then checks the URL
only.
"""

from __future__ import annotations

import ipaddress
import socket

from django.conf import settings
from django.core.exceptions import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundAddressRefused(ConfigurationError):
    """A cloud service URL points (or resolves) at an address the connector must not reach."""


def loopback_allowed() -> bool:
    return bool(getattr(settings, "ALLOW_LOOPBACK_HTTP", True))


def address_refusal(ip: IPAddress) -> str | None:
    """Why the connector must not connect to `ip` for a cloud service, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    if ip.is_loopback:
        return None if loopback_allowed() else "a loopback address (ALLOW_LOOPBACK_HTTP is off)"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if ip.is_private:
        return "a private-network address"
    if ip.is_multicast or ip.is_reserved or not ip.is_global:
        return "a reserved, shared or multicast address"
    return None


def check_url(url: str, *, private_network_allowed: bool = False) -> None:
    """The form rules, again at request time (the URL may not have come through a form)."""
    from integrations.validators import validate_outbound_url

    try:
        validate_outbound_url(url, allow_private=private_network_allowed)
    except ValidationError as exc:
        raise OutboundAddressRefused(f"refused outbound URL: {'; '.join(exc.messages)}") from None


def vetted_address(host: str, port: int) -> str | None:
    """The address to connect to after checking every address `host` resolves to; None when the name
    does not resolve (the connection attempt then fails the usual way)."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return None
    chosen = None
    for *_rest, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        reason = address_refusal(ip)
        if reason:
            raise OutboundAddressRefused(
                f"refused to connect to {host}: it resolves to {ip}, {reason}; a cloud service must be "
                "reached on a public address. Check the URL of this connection."
            )
        chosen = chosen or str(sockaddr[0])
    return chosen


class _GuardedConnection:
    """Mixin for urllib3 connections: resolve, check, then connect to the checked address."""

    def _new_conn(self):  # type: ignore[no-untyped-def]
        address = vetted_address(self._dns_host, self.port)
        if address is None:
            return super()._new_conn()
        name = self._dns_host
        self._dns_host = address  # the TCP connection only; TLS still verifies `name` (self.host)
        try:
            return super()._new_conn()
        finally:
            self._dns_host = name


class GuardedHTTPConnection(_GuardedConnection, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose direct connections go only to public addresses (see module doc)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }
