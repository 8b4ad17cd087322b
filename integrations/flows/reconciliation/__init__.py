"""Three-way reconciliation (Acumatica ↔ Asana ↔ Sage 100) per tenant: what fell between the systems.

Public functions (the console, the CLI and the schedule use only these):
    reconcile(tenant, clients=None, actor="schedule") → ReconciliationRun   report.py (kept per run)
    preview(difference) → flows.common.replay.Preview                        fixes.py (reads, writes nothing)
    enqueue(difference, actor=) → SyncRun                                   fixes.py (the guarded replay)
    DIFFERENCES                                                             compare.py (class → label)
The scheduled job is in tasks.py; the queued fix is fixes.fix_difference.
"""

from .compare import DIFFERENCES
from .fixes import enqueue, preview
from .report import reconcile

__all__ = ["DIFFERENCES", "enqueue", "preview", "reconcile"]
