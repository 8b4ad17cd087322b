"""The result of one check of a connection: what was verified, whether it held, and the detail an
operator reads (each system's check.py returns a list; integrations/flows/checks.py runs them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CheckResult:
    ok: bool
    what: str
    detail: str = ""
