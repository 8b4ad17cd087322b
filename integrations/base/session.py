"""`requests` configured once, and what a transport error says about whether a request was sent."""

from __future__ import annotations

import functools
import os
import urllib.request

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError


@functools.cache
def _environment() -> tuple[bool, str | None]:
    """(a proxy is configured, the CA bundle named by the environment): read once per process."""
    proxies = {k: v for k, v in urllib.request.getproxies().items() if k != "no" and v}
    return bool(proxies), os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


def configure_session(session: requests.Session) -> requests.Session:
    """Configure `requests` once (see http.py's docstring): without a proxy, no per-call scan of the
    environment (proxies, NO_PROXY, CA bundle, ~/.netrc, which could also replace our Authorization)."""
    proxied, ca_bundle = _environment()
    if not proxied:
        session.trust_env = False
        if ca_bundle:
            session.verify = ca_bundle
    return session


def never_connected(exc: BaseException) -> bool:
    """True when a transport error happened before a connection existed: nothing was sent."""
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError | ConnectTimeoutError | requests.ConnectTimeout):
            return True
        todo.extend([getattr(item, "reason", None), item.__cause__, item.__context__, *item.args])
    return False
