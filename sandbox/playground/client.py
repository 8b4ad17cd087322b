"""The sandboxes' control API over HTTP (they run in another process): one POST per control."""

from __future__ import annotations

from typing import Any

import requests

TIMEOUT = 15.0  # a person's change in the sandbox pushes to the connector before the control answers


class SandboxError(Exception):
    """A sandbox did not answer, or refused the control; the message is for the page."""


def control(base_url: str | None, name: str, /, **params: Any) -> Any:
    if not base_url:
        raise SandboxError("this tenant has no sandbox connection for that system")
    try:
        answer = requests.post(f"{base_url}/_sandbox/{name}", json=params, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise SandboxError(
            f"the sandbox at {base_url} did not answer ({exc.__class__.__name__}); is `make run` running?"
        ) from None
    try:
        body = answer.json()
    except ValueError:
        body = {"message": answer.text[:300]}
    if answer.status_code != 200:
        message = body.get("message") if isinstance(body, dict) else None
        raise SandboxError(message or f"the sandbox answered {answer.status_code}")
    return body.get("data")
