"""The sandbox Acumatica and Asana in a process of their own, served over loopback HTTP (waitress).

Why: in-process sandboxes (mounted through `responses`) put their CPU time and their memory — every
bill, every task, every request they log — into the process being measured. Served from here, the
connector process's CPU time and peak RSS are the connector's own (its HTTP client included).

    parent                                   this process (python -m benchmarks.sandbox_process)
    SandboxProcess.start(bills=…) ─spawn──►  build the sandboxes, serve them on ephemeral loopback ports
                                 ◄─stdout──  one JSON line: {"acumatica": url, "asana": url, "control": url}
    .stats() / .change_bills(k) / .stop() ─► the control app (/stats, /change, /quit)

The shared clock: the connector's Asana rate budget can run on a simulated clock (a backfill of
100,000 bills at 1,500 writes/min is 69 real minutes). The parent writes that clock into a small
memory-mapped file and the sandbox Asana reads it, so its own sliding-window rate limit (the one
that answers 429) judges the connector on the same simulated time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import mmap
import os
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CLOCK_FORMAT = "d"
CLOCK_START = 1_780_000_000.0


class SharedClock:
    """A float in a memory-mapped file: the writer is the connector's SimClock, the reader the sandbox."""

    def __init__(self, path: str | Path, *, create: bool = False, start: float = CLOCK_START):
        self.path = str(path)
        if create:
            with open(self.path, "wb") as fh:
                fh.write(struct.pack(CLOCK_FORMAT, start))
        self._fh = open(self.path, "r+b")  # noqa: SIM115 - lives as long as the clock
        self._map = mmap.mmap(self._fh.fileno(), struct.calcsize(CLOCK_FORMAT))

    @property
    def now(self) -> float:
        return struct.unpack(CLOCK_FORMAT, self._map[:8])[0]

    @now.setter
    def now(self, value: float) -> None:
        self._map[:8] = struct.pack(CLOCK_FORMAT, value)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now = self.now + max(seconds, 0.001)

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


# ---- the child ---------------------------------------------------------------------------------------
VENDORS = ["ABCCONCRETE", "STEELWORKS", "RIVERLUMBER", "Société Générale Ümlaut"]


def _build(options: argparse.Namespace) -> dict[str, Any]:
    from sandbox import acumatica as acu_sim
    from sandbox import asana as asana_sim

    acu = acu_sim.build_demo("http://127.0.0.1:1/AcumaticaERP")
    acu.records["Bill"].clear()
    acu.records["PurchaseOrder"].clear()
    # Modified over the past days, one per second up to a minute ago: a later poll's overlap window
    # (5 minutes) re-reads only the newest few hundred, as in production.
    newest = datetime.now(UTC) - timedelta(minutes=1)
    for i in range(options.bills):
        acu.add_bill(
            VENDORS[i % 4],
            100.0 + i,
            reference_nbr=f"B{i:07d}",
            description=f"bench {i}",
            modified=newest - timedelta(seconds=options.bills - i),
        )
    clock = SharedClock(options.clock_file) if options.clock_file else time.time
    asana = asana_sim.build_demo(
        "http://127.0.0.1:1/api/1.0",
        clock=clock,
        requests_per_minute=options.asana_rpm or None,
    )
    from benchmarks.documents import stamp_requests

    asana.stamps = stamp_requests(asana, clock)
    return {"acumatica": acu, "asana": asana}


def _stats(sims: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.documents import busiest_minute

    acu, asana = sims["acumatica"], sims["asana"]
    acu_log = list(acu.request_log)
    asana_log = list(asana.request_log)
    return {
        "acumatica_requests": len(acu_log),
        "acumatica_pages": sum(1 for m, p, _s in acu_log if m == "GET" and p.rsplit("/", 1)[-1] in ENTITIES),
        "acumatica_by_key": sum(
            1 for m, p, _s in acu_log if m == "GET" and any(f"/{e}/" in p for e in ENTITIES)
        ),
        "acumatica_other": sum(
            1
            for m, p, _s in acu_log
            if not (m == "GET" and any(p.endswith(f"/{e}") or f"/{e}/" in p for e in ENTITIES))
        ),
        "asana_requests": len(asana_log),
        "asana_writes": sum(1 for m, _p, s in asana_log if m != "GET" and s != 429),
        "asana_reads": sum(1 for m, _p, s in asana_log if m == "GET" and s != 429),
        "asana_429s": len(asana.rate_limited),
        "asana_busiest_60s_window": busiest_minute(asana.stamps),
        "asana_first_request_at": min(asana.stamps, default=None),
        "asana_last_request_at": max(asana.stamps, default=None),
        # the tokens the per-minute limit was kept for (one window per bearer token, §3)
        "asana_limited_tokens": len(asana._windows),
        "asana_tasks": len(asana.tasks),
        "sandbox_cpu_s": round(time.process_time(), 3),
    }


ENTITIES = ("Bill", "PurchaseOrder", "Employee")


def _control_app(sims: dict[str, Any], stop: threading.Event):
    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        if path == "/stats":
            answer: Any = _stats(sims)
        elif path == "/change":
            acu = sims["acumatica"]
            for i in range(int(body.get("bills", 0))):
                acu.update_record("Bill", ("Bill", f"B{i:07d}"), Amount=5000.0 + i)
            answer = {"changed": int(body.get("bills", 0))}
        elif path == "/stamps":  # when each Asana request arrived (sorted), for the gap analysis
            answer = sorted(sims["asana"].stamps)
        elif path == "/forget":  # drop the request logs (memory) after a phase was counted
            for sim in sims.values():
                sim.request_log.clear()
            sims["asana"].requests.clear()
            sims["asana"].stamps.clear()
            answer = {"ok": True}
        elif path == "/quit":
            stop.set()
            answer = {"ok": True}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b"{}"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(answer).encode()]

    return app


def serve(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox_process")
    parser.add_argument("--bills", type=int, default=0)
    parser.add_argument("--clock-file", default="")
    parser.add_argument("--asana-rpm", type=int, default=0, help="sandbox Asana's own limit (0 = none)")
    options = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector_site.settings_test")
    import django

    django.setup()  # the sandboxes import integrations.* (no database is touched here)
    from waitress.server import create_server

    sims = _build(options)
    stop = threading.Event()
    urls: dict[str, str] = {}
    servers = []
    for name, app, base in (
        ("acumatica", sims["acumatica"].wsgi_app, "/AcumaticaERP"),
        ("asana", sims["asana"].wsgi_app, "/api/1.0"),
        ("control", _control_app(sims, stop), ""),
    ):
        server = create_server(app, host="127.0.0.1", port=0, threads=4)
        port = server.effective_port
        urls[name] = f"http://127.0.0.1:{port}{base}"
        if name in sims:
            _rebase(sims[name], urls[name])
        threading.Thread(target=server.run, daemon=True, name=f"sandbox-{name}").start()
        servers.append(server)
    print(json.dumps(urls), flush=True)
    stop.wait()
    for server in servers:
        server.close()
    return 0


def _rebase(sim: Any, url: str) -> None:
    """The sandboxes were built before their port was known; point them at the served URL."""
    from urllib.parse import urlsplit

    sim.base_url = url
    sim.base_path = urlsplit(url).path.rstrip("/")
    if hasattr(sim, "token_url"):
        parts = urlsplit(url)
        sim.token_url = f"{parts.scheme}://{parts.netloc}/-/oauth_token"


# ---- the parent's handle -----------------------------------------------------------------------------
class SandboxProcess:
    def __init__(self, proc: subprocess.Popen, urls: dict[str, str], started_s: float):
        self.proc = proc
        self.urls = urls
        self.started_s = started_s

    @classmethod
    def start(cls, *, bills: int = 0, clock_file: str = "", asana_rpm: int = 0) -> SandboxProcess:
        started = time.perf_counter()
        cmd = [sys.executable, "-m", "benchmarks.sandbox_process", "--bills", str(bills)]
        if clock_file:
            cmd += ["--clock-file", clock_file]
        if asana_rpm:
            cmd += ["--asana-rpm", str(asana_rpm)]
        proc = subprocess.Popen(  # noqa: S603 - our own module
            cmd, stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parent.parent)
        )
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            proc.wait(timeout=10)
            raise RuntimeError(f"the sandbox process exited ({proc.returncode}) before serving")
        return cls(proc, json.loads(line), time.perf_counter() - started)

    def _call(self, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(self.urls["control"] + path, data=data, method="POST")  # noqa: S310
        with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("/stats")

    def change_bills(self, count: int) -> None:
        self._call("/change", {"bills": count})

    def stamps(self) -> list[float]:
        return self._call("/stamps")

    def forget(self) -> None:
        self._call("/forget")

    def stop(self) -> None:
        # The process closes its servers as soon as /quit is seen, so the answer may be cut short
        # (IncompleteRead); either way the process is on its way out and is waited for below.
        with contextlib.suppress(OSError, http.client.HTTPException):
            self._call("/quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v - before.get(k, 0), 3) for k, v in after.items() if isinstance(v, (int, float))}


if __name__ == "__main__":
    sys.exit(serve())
