"""The documents flow (Acumatica bills and purchase orders → Asana tasks) as the registry sees it."""

from integrations.flows.common.entry import FlowEntry
from integrations.flows.documents import tasks
from integrations.flows.documents.replay import DOCUMENT_OPERATIONS, DocumentReplay

ENTRY = FlowEntry(
    label="documents (Acumatica → Asana polls, drift checks)",
    ensure_schedules=tasks.ensure_schedules,
    run_once=tasks.run_once,
    replay=DocumentReplay(),
    replay_operations=DOCUMENT_OPERATIONS,
)
