"""Processes for tests/scale/test_budget_processes.py: workers that call through the HTTP base on one
shared budget, a victim that takes a slot and hangs, and a checker that reads the budget's state.

`python -m tests.scale.budget_worker <role> <json config>`; every process says it is ready (a file)
and waits for the go file, so they all start hammering at once. A worker appends one line per call as
it happens ("<granted at> <sent at> <done at>" or "FAIL <error>"), so a SIGKILLed process leaves what it did.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path

import requests
from requests.adapters import BaseAdapter

from integrations.base.deadline import attempt_deadline
from integrations.base.http import HttpClient
from integrations.base.ratelimit import LocalBudget, RedisBudget

BASE = "https://api.vendor.example/v1"


class RecordingClock:
    """time.time, remembering per thread the last reading: the instant the budget decided a grant."""

    def __init__(self) -> None:
        self.local = threading.local()

    def __call__(self) -> float:
        now = time.time()
        self.local.last = now
        return now


class VendorAdapter(BaseAdapter):
    """Answers every request here, after `hold` seconds (the slot is held meanwhile)."""

    def __init__(self, hold, on_send=None, on_done=None):
        super().__init__()
        self.hold, self.on_send, self.on_done = hold, on_send, on_done

    def send(self, request, **kwargs):
        if self.on_send:
            self.on_send()
        time.sleep(self.hold())
        if self.on_done:
            self.on_done()
        response = requests.Response()
        response.status_code, response._content, response.url = 200, b"{}", request.url
        response.request = request
        return response

    def close(self):
        pass


class Client(HttpClient):
    system = "vendor"
    private_network_allowed = True  # the adapter below answers; nothing leaves the process


def make_budget(cfg: dict, clock) -> LocalBudget | RedisBudget:
    args = (cfg["key"], cfg.get("per_minute"), cfg.get("max_in_flight"), cfg.get("max_in_flight_writes"))
    if cfg.get("redis_url"):
        return RedisBudget(*args, clock=clock, heartbeat=True, redis_url=cfg["redis_url"])
    return LocalBudget(*args, clock=clock, heartbeat=True, directory=Path(cfg["directory"]))


def wait_for_go(cfg: dict, name: str) -> float:
    Path(cfg["workdir"], f"ready-{name}").write_text(str(os.getpid()))
    go = Path(cfg["workdir"], "go")
    while not go.exists():
        time.sleep(0.01)
    return float(go.read_text())  # the end time


def worker(cfg: dict, name: str) -> None:
    clock = RecordingClock()
    budget = make_budget(cfg, clock)
    rng = random.Random(name)
    local = clock.local
    adapter = VendorAdapter(
        lambda: rng.uniform(0, cfg["hold"]),
        on_send=lambda: (setattr(local, "granted", local.last), setattr(local, "sent", time.time())),
        on_done=lambda: setattr(local, "done", time.time()),
    )
    client = Client(BASE, rate_limiter=budget, recorder=lambda record: None, max_inline_wait=5.0)
    client.session.mount("https://", adapter)
    with open(Path(cfg["workdir"], f"calls-{name}"), "a", buffering=1) as out:
        hammer(client, rng, local, cfg, out, until=wait_for_go(cfg, name))


def hammer(client, rng, local, cfg, out, *, until: float) -> None:
    while time.time() < until:
        method = "POST" if rng.random() < cfg.get("write_share", 0.5) else "GET"
        try:
            with attempt_deadline(cfg["deadline"]):
                client.request(method, "/tasks", json_body={} if method == "POST" else None)
        except Exception as exc:  # noqa: BLE001 - every failure is the test's finding
            out.write(f"FAIL {type(exc).__name__}: {exc}\n")
            continue
        # `granted`: the budget's last clock reading on this thread, the instant it decided (the local
        # store reads it under its lock; Redis gets it from the caller before the script runs).
        # `sent` is after the grant and `done` before the release: that span lies inside the lease.
        out.write(f"{local.granted} {local.sent} {local.done}\n")


def victim(cfg: dict, name: str) -> None:
    """Takes a slot, says so, and hangs inside the call until it is killed."""
    clock = RecordingClock()
    budget = make_budget(cfg, clock)
    marker = Path(cfg["workdir"], "victim-holds")
    adapter = VendorAdapter(lambda: 3600, on_send=lambda: marker.write_text(str(os.getpid())))
    client = Client(BASE, rate_limiter=budget, recorder=lambda record: None, max_inline_wait=5.0)
    client.session.mount("https://", adapter)
    client.request("POST", "/tasks", json_body={})


def checker(cfg: dict, name: str) -> None:
    """Reads the state file as a look does (the shared lock: the dashboard, `status()`), as fast as it
    can: every read must be whole and valid, and the writers must never be stalled for it."""
    import fcntl

    path = Path(cfg["state_path"])
    reads, bad, most_leases = 0, [], 0
    until = wait_for_go(cfg, name)
    lock = os.open(path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    while time.time() < until:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
        reads += 1
        try:
            state = json.loads(raw)
            expiries = [v["exp"] if isinstance(v, dict) else v[0] for v in state["leases"].values()]
            leases = [exp for exp in expiries if exp > time.time()]
            most_leases = max(most_leases, len(leases))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append(f"{exc}: {raw[:120]!r}")
    Path(cfg["workdir"], "checker.json").write_text(
        json.dumps({"reads": reads, "bad": bad[:20], "bad_count": len(bad), "most_leases": most_leases})
    )


def main() -> None:
    role, name, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    {"worker": worker, "victim": victim, "checker": checker}[role](json.loads(raw), name)


if __name__ == "__main__":
    main()
