"""Push notifications (reference §7): a Generic Inquiry's changed rows POSTed to the configured
webhook with the shared-secret header, at least once (re-sent up to `max_attempts` on an error), and
twice with `duplicate_probability` or `force_duplicate_next()`. An update is the same key in `Deleted`
(old values) and `Inserted` (new values); a deletion is a key in `Deleted` only (§7.3)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ..core import control
from .common import PUSH_QUERIES, gi_row, ticks


class PushMixin:
    def _init_push(self) -> None:
        self.push: dict[str, Any] | None = None
        self.push_log: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._force_duplicates = 0

    @control
    def configure_push(
        self,
        url: str,
        header_name: str,
        secret: str,
        *,
        duplicate_probability: float = 0.0,
        auto: bool = True,
        max_attempts: int = 5,
    ) -> None:
        self.push = {
            "url": url,
            "header": header_name,
            "secret": secret,
            "dup": duplicate_probability,
            "auto": auto,
            "max_attempts": max_attempts,
        }

    @control
    def force_duplicate_next(self, n: int = 1) -> None:
        self._force_duplicates += n

    def _queue_push(self, entity: str, rec: dict | None, before: dict | None) -> None:
        self._outbox.append(
            {
                "Query": PUSH_QUERIES[entity],
                "CompanyId": self.tenant,
                "Inserted": [gi_row(entity, rec)] if rec else [],
                "Deleted": [gi_row(entity, before)] if before else [],
                "Id": str(uuid.uuid4()),
                "TimeStamp": ticks(self.now()),
                "AdditionalInfo": {},
            }
        )

    def _auto_flush(self) -> None:
        if self._outbox and self.push and self.push.get("auto", True):
            self.flush_pushes()

    def flush_pushes(self) -> list[dict[str, Any]]:
        """Deliver queued push notifications (outside the state lock); returns what was sent."""
        with self.lock:
            batch, self._outbox = self._outbox, []
        if not self.push:
            return []
        for payload in batch:
            copies = 1
            if self._force_duplicates > 0:
                self._force_duplicates -= 1
                copies = 2
            elif self.random.random() < self.push["dup"]:
                copies = 2
            for _ in range(copies):
                self._deliver_one(payload)
        return batch

    def _deliver_one(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", self.push["header"]: self.push["secret"]}
        for attempt in range(1, self.push["max_attempts"] + 1):
            status, _h, _b = self.deliver(self.push["url"], headers, body)
            self.push_log.append({"payload": payload, "status": status, "attempt": attempt})
            if 200 <= status < 300:
                return
