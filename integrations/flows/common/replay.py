"""What a replay handler is: each flow's replay.py implements ReplayHandler and returns Preview
(integrations/flows/replay.py runs them; integrations/flows/registry.py says which handles what)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from audit.models import AuditEntry, SyncRun
from integrations.models import RecordLink


@dataclass
class Preview:
    link_id: int
    key: str
    action: str  # create | update | skip | release | refuse | …
    diff: dict[str, list[Any]] = field(default_factory=dict)  # label → [current, would write]
    summary: str = ""
    runnable: bool = True
    reason: str = ""  # why it cannot run (runnable False)
    handler: str = ""


class ReplayHandler(Protocol):
    name: str

    def preview(self, link: RecordLink, entry: AuditEntry | None) -> Preview: ...

    def execute(self, link: RecordLink, entry: AuditEntry | None, *, actor: str, run: SyncRun) -> str: ...
