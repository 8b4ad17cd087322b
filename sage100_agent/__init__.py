"""ml-connector's Sage 100 on-premises agent (no Django; see docs/sage100-agent.md).

Public entry points are imported lazily so ``signing`` can be used without the rest of the agent.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_app", "start_in_thread", "load_config", "sign_request"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "start_in_thread"):
        from . import server

        return getattr(server, name)
    if name == "load_config":
        from .config import load_config

        return load_config
    if name == "sign_request":
        from .signing import sign_request

        return sign_request
    raise AttributeError(name)
