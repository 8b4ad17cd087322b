"""Invoice files onto the task, streamed: the connector process's memory while one large file goes from
Acumatica to Asana (issue 21).

    python -m benchmarks attachments [--attachment-mb 25]

Method (docs/PERFORMANCE.md):
- the sandbox Acumatica and Asana run in `benchmarks.sandbox_process` (served over loopback HTTP), so
  the file's bytes held by the sandboxes are never in the process measured here;
- a person attaches a PDF of `--attachment-mb` MB of random bytes to a bill (made and sent by a process of
  its own: this one never holds them); this process runs the
  real document sync (task create, then the attachment step) with the real clients, once first on
  another bill with a small file (imports, sign-in, connection pools are paid there, not measured);
- memory: this process's RSS sampled every 5 ms by a thread during the measured sync, minus the RSS
  just before it (`rss_increase_mb`, the figure held under 10 MB); `ru_maxrss` before and after (the
  process's lifetime peak, which only moves if this sync set a new one); and tracemalloc's peak of
  Python allocations during the sync;
- correctness: the sandbox Asana holds one attachment on the task with the file's size and SHA-256.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
import urllib.request
from typing import Any

from .sandbox_process import SandboxProcess


def add_arguments(parser) -> None:
    group = parser.add_argument_group("attachments")
    group.add_argument("--attachment-mb", type=float, default=25.0, help="file size in MB (default 25)")
    group.add_argument(
        "--attachment-buffered",
        action="store_true",
        help="read the whole file before uploading (the naive way), to show what streaming saves",
    )


def quick(args) -> None:
    args.attachment_mb = min(args.attachment_mb, 2.0)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _control(url: str, name: str, **params: Any) -> Any:
    req = urllib.request.Request(  # noqa: S310 - loopback
        f"{url}/_sandbox/{name}", data=json.dumps(params).encode(), method="POST"
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - loopback
        return json.loads(resp.read())["data"]


def _attach(url: str, nbr: str, name: str, size: int) -> str:
    """A person attaches `size` random bytes (a PDF header first); the bytes are made and sent by a
    process of their own, so the process measured here never held them. Returns their SHA-256."""
    done = subprocess.run(  # noqa: S603 - our own script, loopback only
        [sys.executable, "-c", ATTACH_SCRIPT, url, nbr, name, str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


ATTACH_SCRIPT = """
import base64, hashlib, json, os, sys, urllib.request
url, nbr, name, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
content = b"%PDF-1.7" + os.urandom(size - 8)
body = json.dumps({"kind": "bill", "type": "Bill", "nbr": nbr, "filename": name,
                   "content_base64": base64.b64encode(content).decode()}).encode()
req = urllib.request.Request(url + "/_sandbox/person_attach_file", data=body, method="POST")
urllib.request.urlopen(req, timeout=600).read()
print(hashlib.sha256(content).hexdigest())
"""


class RssSampler(threading.Thread):
    def __init__(self, every: float = 0.005):
        super().__init__(daemon=True)
        self.every = every
        self.peak = _rss_mb()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(self.every)


def run(args: Any) -> dict[str, Any]:
    from benchmarks import setup_django

    setup_django()
    from benchmarks.backfill import _tenant
    from integrations.acumatica.client import client_for as acu_client
    from integrations.asana.client import client_for as asana_client
    from integrations.flows.documents.sync import DocumentSync
    from integrations.models import Flow, RecordLink, TaskAttachment

    size = int(args.attachment_mb * 1024 * 1024)
    sandbox = SandboxProcess.start(bills=2)
    out: dict[str, Any] = {"file_mb": round(size / 2**20, 1)}
    try:
        flow = _tenant(sandbox.urls)
        flow.options = {**flow.options, "attachments": {"enabled": True, "max_bytes": size + 1024}}
        flow.save()
        acu_url, asana_url = sandbox.urls["acumatica"], sandbox.urls["asana"]
        _attach(acu_url, "B0000000", "warm-up.pdf", 64 * 1024)
        digest = _attach(acu_url, "B0000001", "invoice-25mb.pdf", size)
        if args.attachment_buffered:  # the naive way, for comparison: the whole file read first
            from integrations.flows.documents import attachments as flow_attachments

            streamed = flow_attachments.HashingChunks.__iter__

            def buffered(self):
                return iter([b"".join(streamed(self))])

            flow_attachments.HashingChunks.__iter__ = buffered
            out["buffered"] = True

        def sync() -> DocumentSync:
            f = Flow.objects.select_related("tenant").get(pk=flow.pk)
            return DocumentSync(
                f, acumatica=acu_client(f.tenant.acumatica), asana=asana_client(f.tenant.asana)
            )

        sync().process("Bill", "B0000000")  # warm-up: imports, sign-in, pools
        rss_before, peak_before = _rss_mb(), _peak_rss_mb()
        sampler = RssSampler()
        sampler.start()
        tracemalloc.start()
        wall = time.perf_counter()
        sync().process("Bill", "B0000001")
        wall = time.perf_counter() - wall
        _current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sampler.stop.set()
        sampler.join()
        task = RecordLink.objects.get(acumatica_ref="B0000001").asana_task_gid
        held = _control(asana_url, "attachments_of", task_gid=task)
        row = TaskAttachment.objects.get(link__acumatica_ref="B0000001")
        out.update(
            {
                "rss_before_mb": round(rss_before, 1),
                "rss_increase_mb": round(sampler.peak - rss_before, 1),
                "ru_maxrss_increase_mb": round(max(0.0, _peak_rss_mb() - peak_before), 1),
                "tracemalloc_peak_mb": round(traced_peak / 2**20, 2),
                "sync_wall_s": round(wall, 2),
                "throughput_mb_s": round(size / 2**20 / wall, 1) if wall else None,
                "attachments_on_task": len(held),
                "uploaded_intact": bool(
                    len(held) == 1 and held[0]["size"] == size and held[0]["sha256"] == digest == row.sha256
                ),
            }
        )
    finally:
        sandbox.stop()
    return out
