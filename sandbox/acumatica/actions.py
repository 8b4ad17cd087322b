"""Actions and long operations (reference §5).

- `POST Bill/ReleaseBill` starts a long operation: 202 + `Location: …/Bill/ReleaseBill/status/<guid>`.
  It completes **on its own** `operation_seconds` after it started, on the sandbox's clock, whether or
  not anyone polls (§5.2: Acumatica runs it server-side). A status GET answers 202 while it runs and
  204 once done. `release_polls` is a stand-in for time when a test's clock never moves: the
  operation is also seen done by the status poll after that many 202s.
- One long operation per session at a time (§5.2): while one runs, every other request of that
  session (a session = one OAuth grant or one cookie) is refused — only its status URL answers — and
  each such overlap is recorded in `self.overlaps` (a test asserts it empty).
- `Bill/Approve` and `PurchaseOrder/Approve|Reject` are workflow actions by name (§5.4): 204 at once.
- A tenant's workflow may lack an action (no approval maps, another customisation): `withdraw_action`
  removes it from `$adHocSchema` `_workflowActions` and its POST answers 404 (§5.2 "no action with
  this name").
- Controls: `complete_long_operations()`, `long_operations()`, `overlaps_seen()`,
  `withdraw_action(entity, action)`.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

from ..core import SimRequest, SimResponse, control
from .common import LONG_OPERATION_TEXT, http_error, no_entity, no_resource

BILL_ACTIONS = ("ReleaseBill", "Approve", "Reject", "Hold", "RemoveHold", "ReverseBill", "ReleaseRetainage")
PO_ACTIONS = ("Approve", "Reject", "Hold", "RemoveHold")


class ActionsMixin:
    release_polls: int | None
    operation_seconds: float

    def _init_actions(self) -> None:
        self.operations: dict[str, dict[str, Any]] = {}  # status guid -> long operation
        self.overlaps: list[dict[str, Any]] = []
        self.withdrawn_actions: set[tuple[str, str]] = set()

    @control
    def withdraw_action(self, entity: str, action: str) -> list[str]:
        """This tenant's Acumatica does not offer `entity`/`action`; returns the withdrawn ones."""
        self.withdrawn_actions.add((entity, action))
        return sorted(f"{e}/{a}" for e, a in self.withdrawn_actions)

    # ---- the per-session rule ------------------------------------------------------------------
    def finish_due_operations(self) -> None:
        """Long operations whose time has come complete server-side (polled or not)."""
        now = self.now()
        for op in self.operations.values():
            if not op["done"] and op["due"] <= now:
                self._complete(op)

    def _running(self, principal: str) -> dict[str, Any] | None:
        self.finish_due_operations()
        return next(
            (op for op in self.operations.values() if op["principal"] == principal and not op["done"]), None
        )

    def _refuse_during_operation(self, principal: str, req: SimRequest) -> None:
        """Another request of a session whose long operation runs: recorded and refused (§5.2)."""
        op = self._running(principal)
        if op is None:
            return
        self.overlaps.append(
            {
                "session": principal,
                "operation": op["id"],
                "action": op["action"],
                "document": op["bill"],
                "request": f"{req.method} {req.path}",
                "at": self.now(),
            }
        )
        raise http_error(LONG_OPERATION_TEXT)

    @control
    def complete_long_operations(self) -> int:
        """Every running long operation completes now (as if its time had come); returns how many."""
        running = [op for op in self.operations.values() if not op["done"]]
        for op in running:
            self._complete(op)
        return len(running)

    @control
    def long_operations(self) -> list[dict[str, Any]]:
        self.finish_due_operations()
        return [
            {k: op[k] for k in ("id", "action", "bill", "started", "due", "done", "polls")}
            for op in self.operations.values()
        ]

    @control
    def overlaps_seen(self) -> list[dict[str, Any]]:
        """Requests that arrived in a session while its long operation ran (each was refused)."""
        return list(self.overlaps)

    # ---- routes --------------------------------------------------------------------------------
    def _bill_action(self, req: SimRequest, ep: str, ver: str, action: str) -> SimResponse:
        principal = self._endpoint(req, ep, ver)
        if action not in BILL_ACTIONS or ("Bill", action) in self.withdrawn_actions:
            raise no_resource(req.url)  # "404: no action with this name" (§5.2)
        invocation = req.json()
        bill = self._find_by_body("Bill", invocation.get("entity") or {})
        if bill is None:
            raise no_entity()
        self._check_lock("Bill", bill)
        if action in ("Approve", "Reject", "Hold", "RemoveHold"):
            self._workflow("Bill", bill, action)
            return SimResponse.empty(204, {"Location": self._self_link("Bill", bill)})
        if action != "ReleaseBill":
            raise http_error(f"The {action} action is not available for the document.")
        if bill["Status"] not in ("Balanced", "Under Reclassification"):
            # UNVERIFIED body; release is allowed only from Balanced (AIR-UG AP_30_10_00, §3.1).
            raise http_error(
                f"The document cannot be released because its status is {bill['Status']}. "
                "Only documents with the Balanced status can be released."
            )
        sid = str(uuid.uuid4())
        started = self.now()
        self.operations[sid] = {
            "id": sid,
            "action": action,
            "principal": principal,
            "bill": (bill["Type"], bill["ReferenceNbr"]),
            "started": started,
            "due": started + timedelta(seconds=self.operation_seconds),
            "remaining": self.release_polls,
            "polls": 0,
            "done": False,
        }
        self._wake_at_completion(self.operation_seconds)
        return SimResponse.empty(
            202, {"Location": f"{self.base_url}/entity/{ep}/{ver}/Bill/{action}/status/{sid}"}
        )

    def _wake_at_completion(self, seconds: float) -> None:
        """On the host's clock nothing else may arrive: complete (and push) when the time comes. (A
        test's own clock moves only when the test moves it; the next request or `record()` sees it.)"""
        if not self.real_clock:
            return
        timer = threading.Timer(max(0.0, seconds) + 0.01, self._finish_in_background)
        timer.daemon = True
        timer.start()

    def _finish_in_background(self) -> None:
        with self.lock:
            self.finish_due_operations()
        self._auto_flush()

    def _po_action(self, req: SimRequest, ep: str, ver: str, action: str) -> SimResponse:
        """PurchaseOrder Approve/Reject under approval maps: Pending Approval → Open / Rejected."""
        self._endpoint(req, ep, ver)
        if action not in PO_ACTIONS or ("PurchaseOrder", action) in self.withdrawn_actions:
            raise no_resource(req.url)
        po = self._find_by_body("PurchaseOrder", req.json().get("entity") or {})
        if po is None:
            raise no_entity()
        self._check_lock("PurchaseOrder", po)
        self._workflow("PurchaseOrder", po, action)
        return SimResponse.empty(204, {"Location": self._self_link("PurchaseOrder", po)})

    def _workflow(self, entity: str, rec: dict, action: str) -> None:
        """Approve / Reject (Pending Approval → Balanced|Open / Rejected) and Hold / RemoveHold: graph
        actions by name, 204 at once (§5.4; the names are UNVERIFIED there)."""
        number = rec["ReferenceNbr"] if entity == "Bill" else rec["OrderNbr"]
        before = dict(rec)
        if action in ("Approve", "Reject"):
            if rec["Status"] != "Pending Approval":
                verb = "approved" if action == "Approve" else "rejected"
                raise http_error(f"The document cannot be {verb} because its status is {rec['Status']}.")
            approved = "Balanced" if entity == "Bill" else "Open"
            rec["Status"] = approved if action == "Approve" else "Rejected"
            self.requires_approval.discard((rec["Type"], number))
        else:
            if rec["Status"] not in ("On Hold", "Balanced", "Open", "Pending Approval", "Rejected"):
                raise http_error(
                    f"The {action} action is not available for a document with the {rec['Status']} status."
                )
            self._apply(entity, rec, {"Hold": action == "Hold"})
            rec["Hold"] = action == "Hold"
        self._touch(entity, rec, before)

    def _action_status(self, req: SimRequest, ep: str, ver: str, action: str, sid: str) -> SimResponse:
        principal = self._principal(req)
        op = self.operations.get(sid)
        if op is None or op["principal"] != principal:
            # UNVERIFIED body (§5.2); the official client treats any status but 202/204 as a failure.
            raise http_error("The operation does not exist.", status=500)
        op["polls"] += 1
        if not op["done"] and op["due"] > self.now():
            if op["remaining"] is None or op["remaining"] > 0:
                if op["remaining"] is not None:
                    op["remaining"] -= 1
                return SimResponse.empty(202, {"Location": req.url.split("?")[0]})
            self._complete(op)
        if not op["done"]:
            self._complete(op)
        bill = self.records["Bill"].get(op["bill"])
        headers = {"Location": self._self_link("Bill", bill)} if bill else {}
        return SimResponse.empty(204, headers)

    def _complete(self, op: dict[str, Any]) -> None:
        op["done"] = True
        op["finished"] = self.now()
        bill = self.records["Bill"].get(op["bill"])
        if bill is None or bill["Status"] not in ("Balanced", "Under Reclassification"):
            return  # deleted or changed by a person meanwhile: the release finds nothing to do
        before = dict(bill)
        bill.update(Status="Open")
        self._touch("Bill", bill, before)
