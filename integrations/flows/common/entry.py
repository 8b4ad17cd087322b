"""The shape of one line of the flow registry (integrations/flows/registry.py): what a flow package offers
to the rest of the product. Each flow package builds its own in its entry.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from integrations.flows.common.replay import ReplayHandler


@dataclass(frozen=True)
class FlowEntry:
    label: str
    # Idempotent: create or refresh the flow's recurring jobs; returns one line per schedule touched.
    ensure_schedules: Callable[[], list[str]] | None = None
    # (flow, task_gid, *, clients, inbound_event, task) -> outcome: called for each Asana task change of
    # the flow's project (kinds in Flow.TASK_EVENT_KINDS).
    handle_task_change: Callable[..., str] | None = None
    # (flow, actor) -> (worked?, answer): one pass now, by hand (the demo's first pass, "Sync now").
    run_once: Callable[[Any, str], tuple[bool, str]] | None = None
    # Replays a record of this flow (by flow kind), and the audit operations it answers for.
    replay: ReplayHandler | None = None
    replay_operations: tuple[str, ...] = field(default=())
    # Anything else a flow wants to expose by name (kept small; prefer a field above).
    extras: dict[str, Any] = field(default_factory=dict)
