"""Refused deliveries are counted per source address, never stored (issue 17, "no unauthenticated row").

A POST to an unknown hook, with a wrong or missing secret or signature, or over the size cap proves
nothing about its sender, so it must not cost a row. Each refusal is logged with a short excerpt and
counted in the cache (Redis when REDIS_URL is set, else the database cache) under the sender's address
and the current minute. An address that reaches WEBHOOK_REFUSALS_PER_MINUTE is *slowed*: until the
minute ends, this process answers its requests that are not already known to be good with 429 and
`Retry-After`, without a database read (receivers still accept its verified deliveries, so a busy
proxy address shared with a vendor is not locked out).

The hot path of a valid delivery touches none of this: the block list is a dict in process memory,
filled only when a refusal's shared count crosses the limit.
"""

from __future__ import annotations

import logging
import secrets
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

log = logging.getLogger(__name__)

WINDOW = 60  # seconds
EXCERPT = 64  # bytes of a refused body that reach the log


def client_address(request: HttpRequest) -> str:
    """The sender: REMOTE_ADDR, or the first hop of WEBHOOK_CLIENT_IP_HEADER behind a trusted proxy."""
    header = getattr(settings, "WEBHOOK_CLIENT_IP_HEADER", "")
    if header:
        forwarded = request.headers.get(header, "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return str(request.META.get("REMOTE_ADDR") or "unknown")[:64]


class RefusalCounter:
    """Counts refusals per address per minute in the shared cache; blocks an address in this process."""

    def __init__(self) -> None:
        self._blocked: dict[str, float] = {}  # address -> monotonic time its block ends
        self._namespace = ""  # shared by every process; reset() (tests) starts a fresh one

    @staticmethod
    def _limit() -> int:
        return int(getattr(settings, "WEBHOOK_REFUSALS_PER_MINUTE", 30))

    def _key(self, address: str, minute: int) -> str:
        return f"ingest:refused{self._namespace}:{address}:{minute}"

    def blocked(self, address: str) -> bool:
        until = self._blocked.get(address)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        self._blocked.pop(address, None)
        return False

    def count(self, address: str) -> int:
        """One more refusal for `address` this minute; returns the shared count (0 if the cache is down)."""
        now = time.time()
        key = self._key(address, int(now // WINDOW))
        try:
            cache.add(key, 0, timeout=WINDOW * 2)
            n = int(cache.incr(key))
        except Exception as exc:  # noqa: BLE001 - a cache outage must not turn a refusal into a 500
            log.warning("refusal counter unavailable (%s): counting in this process only", type(exc).__name__)
            n = 0
        if n >= self._limit() and len(self._blocked) < 10_000:
            self._blocked[address] = time.monotonic() + (WINDOW - now % WINDOW)
        return n

    def seen(self, address: str) -> int:
        """Refusals of `address` in the current minute (for the console and tests)."""
        try:
            return int(cache.get(self._key(address, int(time.time() // WINDOW))) or 0)
        except Exception:  # noqa: BLE001
            return 0

    def retry_after(self, address: str) -> int:
        until = self._blocked.get(address, 0.0)
        return max(1, int(until - time.monotonic()) + 1)

    def reset(self) -> None:
        """Forget this process's blocks and count in a fresh namespace (the old keys expire)."""
        self._blocked.clear()
        self._namespace = ":" + secrets.token_hex(4)


refusals = RefusalCounter()


def excerpt(body: bytes) -> str:
    """The first bytes of a refused body, printable, for the log line (never stored)."""
    head = body[:EXCERPT]
    text = head.decode("utf-8", errors="replace").encode("unicode_escape").decode("ascii")
    return text + ("…" if len(body) > EXCERPT else "")
