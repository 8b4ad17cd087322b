"""Auditor evidence: for a tenant and a period (optionally one flow), every document created or released,
with its approvals, the values each approval was bound to, the release, what changed in between,
refusals, hashes and replays — as CSV or a PDF report, each export recorded with its SHA-256.

Public functions (the console and the CLI use only these):
    build_rows(tenant, start, end, flow=None)              rows.py
    produce(tenant, start, end, fmt=, actor=, flow=None)    export.py — renders and records the export
    verify(content, tenants=None, actor="")                 export.py — the recorded export, or None
"""

from .export import FORMATS, Export, produce, sha256_hex, verify
from .rows import COLUMNS, EvidenceRow, build_rows, summary

__all__ = [
    "COLUMNS",
    "FORMATS",
    "EvidenceRow",
    "Export",
    "build_rows",
    "produce",
    "sha256_hex",
    "summary",
    "verify",
]
