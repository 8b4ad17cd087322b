"""Validation rules shared by the console forms, `connector config apply` and the clients.

Each validator raises django.core.exceptions.ValidationError with an operator-readable message.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

ENDPOINT_VERSION_RE = re.compile(r"^\d{2}\.\d{3}\.\d{3}$")
GID_RE = re.compile(r"^\d{1,32}$")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def validate_endpoint_version(value: str) -> None:
    """Acumatica endpoint versions look like 24.200.001 (major.release.build)."""
    if not ENDPOINT_VERSION_RE.match(value or ""):
        raise ValidationError(
            "%(value)r is not an Acumatica endpoint version; it must look like 24.200.001.",
            params={"value": value},
            code="endpoint_version",
        )


def validate_gid(value: str) -> None:
    """Asana GIDs are numeric strings."""
    if value in (None, ""):
        return
    if not GID_RE.match(str(value)):
        raise ValidationError(
            "%(value)r is not an Asana GID; GIDs are digits only (e.g. 1201234567890123).",
            params={"value": value},
            code="gid",
        )


def is_loopback_host(host: str) -> bool:
    host = (host or "").strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_private_host(host: str) -> bool:
    """True for literal private, link-local or reserved addresses (not for DNS names)."""
    host = (host or "").strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return (
        ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified
    ) and not ip.is_loopback


def is_numeric_shorthand(host: str) -> bool:
    """True for an IPv4 address written other than as four decimal parts: 2130706433, 0x7f.1,
    017700000001 — forms resolvers accept and people reading a URL do not recognise."""
    host = (host or "").strip("[]")
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def validate_outbound_url(value: str, *, allow_private: bool = False) -> None:
    """Outbound URLs must be https; http only to loopback (the sandboxes) when allowed.

    Literal private-network addresses are refused for cloud services (Acumatica, Asana) so a
    misconfigured tenant cannot make the connector probe the internal network; the Sage 100 agent,
    which lives on the customer's LAN, passes allow_private=True.
    """
    if not value:
        raise ValidationError("A URL is required.", code="url")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationError(
            "%(value)r is not an absolute http(s) URL.", params={"value": value}, code="url"
        )
    if is_numeric_shorthand(parts.hostname):
        raise ValidationError(
            "%(value)r writes an IP address in a numeric shorthand; use a host name or dotted form.",
            params={"value": value},
            code="url_private",
        )
    loopback = is_loopback_host(parts.hostname)
    if parts.scheme == "http":
        if not loopback:
            raise ValidationError(
                "%(value)r uses http://; only https:// is allowed (plain http is accepted for loopback "
                "sandbox addresses only).",
                params={"value": value},
                code="url_scheme",
            )
        if not getattr(settings, "ALLOW_LOOPBACK_HTTP", True):
            raise ValidationError(
                "%(value)r is a loopback http:// URL, which ALLOW_LOOPBACK_HTTP=false refuses.",
                params={"value": value},
                code="url_scheme",
            )
    if not allow_private and is_private_host(parts.hostname):
        raise ValidationError(
            "%(value)r points at a private network address; refused for a cloud service.",
            params={"value": value},
            code="url_private",
        )
    if parts.username or parts.password:
        raise ValidationError("Put credentials in their own fields, not in the URL.", code="url_userinfo")


# ---- Flow.options["attachments"] (issue 21: invoice files onto the task) ------------------------------
# Asana enforces 100 MB per attachment on POST /attachments (its OpenAPI spec, createAttachmentForObject).
ASANA_ATTACHMENT_MAX_BYTES = 100 * 1024 * 1024
ATTACHMENT_DEFAULTS = {
    "enabled": False,
    "max_bytes": 25 * 1024 * 1024,
    "allowed_types": ["application/pdf", "image/png", "image/jpeg", "image/tiff"],
}
MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*/(\*|[a-z0-9][a-z0-9.+-]*)$")


def attachment_options(options: object) -> dict:
    """The flow's attachment settings with defaults filled in; ValidationError names what is wrong.

    `{"attachments": {"enabled": true, "max_bytes": 26214400, "allowed_types": ["application/pdf"]}}`
    """
    raw = (options or {}).get("attachments") if isinstance(options, dict) else None
    if raw is None:
        return dict(ATTACHMENT_DEFAULTS)
    if not isinstance(raw, dict):
        raise ValidationError({"options": "options.attachments must be an object"})
    unknown = sorted(set(raw) - set(ATTACHMENT_DEFAULTS))
    if unknown:
        raise ValidationError({"options": f"options.attachments: unknown key(s) {', '.join(unknown)}"})
    out = {**ATTACHMENT_DEFAULTS, **raw}
    if not isinstance(out["enabled"], bool):
        raise ValidationError({"options": "options.attachments.enabled must be true or false"})
    size = out["max_bytes"]
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= ASANA_ATTACHMENT_MAX_BYTES:
        raise ValidationError(
            {
                "options": f"options.attachments.max_bytes must be a whole number of bytes from 1 to "
                f"{ASANA_ATTACHMENT_MAX_BYTES} (Asana's limit per attachment)"
            }
        )
    types = out["allowed_types"]
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ValidationError({"options": "options.attachments.allowed_types must be a non-empty list"})
    bad = [t for t in types if not MEDIA_TYPE_RE.match(t.strip().lower())]
    if bad:
        raise ValidationError(
            {"options": f"options.attachments.allowed_types: not a media type: {', '.join(bad)}"}
        )
    out["allowed_types"] = [t.strip().lower() for t in types]
    return out
