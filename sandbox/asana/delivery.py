"""Webhook deliveries the way Asana makes them (`reference/asana.md` §6.3–6.5).

- Each webhook's events are sent batched in one signed POST (`X-Hook-Signature` = HMAC-SHA256 hex of
  the raw body with the handshake secret, §6.3); heartbeats are the same with `{"events": []}`.
- A failed delivery (non-2xx, timeout, refused) is retried with exponential back-off
  (`next_attempt_after`, on the simulator's clock); after 24 hours of failures the webhook is deleted
  without telling anyone (§6.5, §8). `max_delivery_failures` shortens that for in-process tests.
- Heartbeats: one right after the handshake, then every eight hours of the simulator's clock.

In-process tests deliver explicitly with `deliver_pending_events()` / `send_heartbeats()` (also controls).
A served sandbox runs `start_delivery()`: a background thread that delivers pending events within
about `batch_delay` seconds (1 s by default) without anyone asking, retries and sends heartbeats.
`set_clock_rate(rate)` runs the simulator's clock `rate` times faster, so the back-off, the heartbeats
and the 24-hour failure window can be watched in seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

from ..core import control
from .helpers import iso, parse_time

HEARTBEAT_EVERY = 8 * 3600
FAILURE_WINDOW = 24 * 3600


class DeliveryMixin:
    # ---- one delivery: build under the lock, POST without it, record under it -----------------------
    def _sign(self, secret: str, body: bytes) -> str:
        return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

    def _prepare(self, gid: str, events: list[dict]) -> tuple[str, dict[str, str], bytes]:
        webhook = self.webhooks[gid]
        body = json.dumps({"events": events}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hook-Signature": self._sign(webhook["secret"], body),
        }
        return webhook["target"], headers, body

    def _post(self, target: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            status, _headers, reply = self.deliver(target, headers, body)
        except Exception as exc:  # noqa: BLE001 - a broken target is a failed delivery, not a sandbox crash
            status, reply = 0, str(exc).encode()
        return status, reply or b""

    def _record(self, gid: str, status: int, reply: bytes, body: bytes) -> int:
        self.deliveries.append((gid, status, body))
        webhook = self.webhooks.get(gid)
        if webhook is None:  # deleted while the POST was in flight
            return status
        now = self.now()
        webhook["last_attempt"] = now
        if 200 <= status < 300:
            webhook.update(
                active=True,
                last_success_at=self.now_iso(),
                delivery_retry_count=0,
                next_attempt_after=None,
                failure_deletion_timestamp=None,
                first_failure=None,
            )
            return status
        webhook["first_failure"] = webhook["first_failure"] or now
        webhook["delivery_retry_count"] += 1
        webhook["last_failure_at"] = self.now_iso()
        webhook["last_failure_content"] = f"{status} {reply[:200].decode(errors='replace')}".strip()
        webhook["next_attempt_after"] = iso(now + 60 * 2 ** webhook["delivery_retry_count"])
        webhook["failure_deletion_timestamp"] = iso(webhook["first_failure"] + FAILURE_WINDOW)
        too_many = (
            self.max_delivery_failures and webhook["delivery_retry_count"] >= self.max_delivery_failures
        )
        if too_many or now >= webhook["first_failure"] + FAILURE_WINDOW:
            del self.webhooks[gid]  # Asana deletes it without telling anyone (§6.5, §8)
        return status

    def _deliver_to(self, gid: str, events: list[dict]) -> int:
        """Deliver now, holding the lock (in-process: the receiver runs in this thread)."""
        target, headers, body = self._prepare(gid, events)
        status, reply = self._post(target, headers, body)
        return self._record(gid, status, reply, body)

    @control
    def deliver_pending_events(self) -> list[tuple[str, int]]:
        """Deliver each webhook's queued events (and the first heartbeat) now; failures stay queued."""
        results = []
        with self.lock:
            for gid in list(self.webhooks):
                webhook = self.webhooks[gid]
                if webhook["heartbeat_due"]:
                    webhook["heartbeat_due"] = False
                    webhook["last_heartbeat"] = self.now()
                    results.append((gid, self._deliver_to(gid, [])))
                if gid in self.webhooks and self.webhooks[gid]["queue"]:
                    events = list(webhook["queue"])
                    status = self._deliver_to(gid, events)
                    if 200 <= status < 300:
                        webhook["queue"] = webhook["queue"][len(events) :]
                    results.append((gid, status))
        return results

    @control
    def send_heartbeats(self) -> list[tuple[str, int]]:
        """The empty, signed `{"events": []}` Asana sends every eight hours (§6.5)."""
        with self.lock:
            for webhook in self.webhooks.values():
                webhook["last_heartbeat"] = self.now()
            return [(gid, self._deliver_to(gid, [])) for gid in list(self.webhooks)]

    @control
    def delete_webhook_silently(self, gid: str) -> bool:
        with self.lock:
            return self.webhooks.pop(gid, None) is not None

    # ---- the clock's rate (a fast clock for watching back-off and the failure window) --------------
    @control
    def set_clock_rate(self, rate: float) -> str:
        """From now on the simulator's clock runs `rate` times as fast as its base clock."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        current = self.now() - self.clock_offset
        self._clock_anchor = (self.clock(), current)
        self.clock_rate = float(rate)
        return self.now_iso()

    # ---- the background deliverer of a served sandbox --------------------------------------------------
    def start_delivery(self, *, batch_delay: float = 1.0, tick: float = 0.2) -> threading.Thread:
        """Deliver events, retries and heartbeats on a daemon thread until `stop_delivery()`."""
        self._delivery_stop = threading.Event()
        self.batch_delay = batch_delay

        def run() -> None:
            while not self._delivery_stop.wait(tick):
                try:
                    self.delivery_tick()
                except Exception:  # noqa: BLE001 - one bad tick must not end deliveries for good
                    time.sleep(tick)

        thread = threading.Thread(target=run, name=f"{self.name}-webhook-delivery", daemon=True)
        thread.start()
        self._delivery_thread = thread
        return thread

    def stop_delivery(self) -> None:
        stop = getattr(self, "_delivery_stop", None)
        if stop is not None:
            stop.set()
            self._delivery_thread.join(timeout=15)

    def delivery_tick(self) -> list[tuple[str, int]]:
        """One pass: every webhook whose batch, retry or heartbeat is due gets one POST (outside the
        lock, so a receiver calling back into the sandbox never waits on it)."""
        due: list[tuple[str, int, str, dict[str, str], bytes]] = []
        with self.lock:
            now, mono = self.now(), time.monotonic()
            for gid, webhook in self.webhooks.items():
                retry_at = webhook.get("next_attempt_after")
                if retry_at and now < parse_time(retry_at).timestamp():
                    continue
                if webhook["queue"]:
                    if webhook.get("pending_since") is None:
                        webhook["pending_since"] = mono
                    if retry_at or mono - webhook["pending_since"] >= self.batch_delay:
                        events = list(webhook["queue"])
                        due.append((gid, len(events), *self._prepare(gid, events)))
                        continue
                last_beat = webhook.get("last_heartbeat")
                if webhook["heartbeat_due"] or (last_beat is not None and now - last_beat >= HEARTBEAT_EVERY):
                    webhook["heartbeat_due"] = False
                    webhook["last_heartbeat"] = now
                    due.append((gid, 0, *self._prepare(gid, [])))
        results = []
        for gid, count, target, headers, body in due:
            status, reply = self._post(target, headers, body)
            with self.lock:
                self._record(gid, status, reply, body)
                webhook = self.webhooks.get(gid)
                if webhook is not None and 200 <= status < 300 and count:
                    webhook["queue"] = webhook["queue"][count:]
                    webhook["pending_since"] = None
            results.append((gid, status))
        return results
