"""What the shared rate budget and the HTTP base cost per request, in CPU of the calling process.

    python -m benchmarks budget [--budget-calls 20000]

- the local budget (a JSON file rewritten in place under an flock'd lock file): a read (one update,
  the pace) and a write (the grant with its lease, then the release, which the next grant writes:
  one update per request in a steady run);
- the Redis budget (one Lua script per grant, one pipeline per release), when BENCH_REDIS_URL answers;
- `requests` through the HTTP base with an in-process adapter (no network): with the session
  configured once (trust_env off, the default without a proxy) and with requests' per-call scan of
  the proxy environment and ~/.netrc (trust_env on), to show what that scan cost.
CPU is the process's own (user + system), divided by the calls; one process, nothing else running.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def add_arguments(parser) -> None:
    group = parser.add_argument_group("budget")
    group.add_argument("--budget-calls", type=int, default=20_000, help="calls per measurement (20,000)")


def quick(args) -> None:
    args.budget_calls = min(args.budget_calls, 1_000)


def _cpu_us_per_call(calls: int, fn) -> float:
    started = time.process_time()
    for _ in range(calls):
        fn()
    return round((time.process_time() - started) / calls * 1e6, 1)


def _budget_costs(budget, calls: int) -> dict[str, float]:
    def read():
        assert budget.acquire(write=False) == 0
        budget.release(write=False)

    def write():
        assert budget.acquire(write=True) == 0
        budget.release(write=True)

    return {"read_us": _cpu_us_per_call(calls, read), "write_us": _cpu_us_per_call(calls, write)}


def _http_costs(calls: int, trust_env: bool) -> float:
    import requests
    from requests.adapters import BaseAdapter

    from integrations.base.http import HttpClient

    class Answer(BaseAdapter):
        def send(self, request, **kwargs):
            response = requests.Response()
            response.status_code, response._content, response.url = 200, b"{}", request.url
            response.request = request
            return response

        def close(self):
            pass

    class Client(HttpClient):
        system = "bench"
        private_network_allowed = True

    client = Client("https://api.vendor.example/v1", recorder=lambda record: None)
    client.session.mount("https://", Answer())
    client.session.trust_env = trust_env
    return _cpu_us_per_call(calls, lambda: client.request("GET", "/tasks"))


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    from integrations.base.ratelimit import LocalBudget, RedisBudget

    calls = args.budget_calls
    results: dict[str, Any] = {"calls": calls}
    with tempfile.TemporaryDirectory() as directory:
        # unpaced (every acquire is a grant) with a write cap, as an Asana token's budget has
        budget = LocalBudget("bench:local", None, None, 10, directory=Path(directory))
        results["local_budget"] = _budget_costs(budget, calls)
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        budget = RedisBudget(f"bench:{uuid.uuid4().hex[:8]}", None, None, 10, redis_url=redis_url)
        budget.redis.ping()
    except Exception as exc:  # noqa: BLE001 - no Redis: say so and go on
        results["redis_budget"] = f"skipped: {type(exc).__name__}"
    else:
        try:
            results["redis_budget"] = _budget_costs(budget, calls)
        finally:
            budget.redis.delete(*(budget.state_key + s for s in ("", ":leases", ":writes", ":holders")))
    results["http_get_us"] = {
        "configured_once": _http_costs(calls, trust_env=False),
        "environment_per_call": _http_costs(calls, trust_env=True),
    }
    return results
