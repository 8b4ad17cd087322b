"""Serve a simulator on loopback (waitress, port 0) and run a tiny webhook receiver, for tests that must
see the sandbox the way `connector sandbox` serves it. Both stop when the context exits."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def served(sim) -> Iterator[str]:
    """Serve `sim` on 127.0.0.1:<free port>; yields its base URL (the sim's base_url is updated)."""
    from waitress.server import create_server

    server = create_server(sim.wsgi_app, host="127.0.0.1", port=0, threads=4)
    port = server.effective_port
    sim.base_url = f"http://127.0.0.1:{port}{sim.base_path}"
    thread = threading.Thread(target=server.run, name="sandbox-test-server", daemon=True)
    thread.start()
    try:
        yield sim.base_url
    finally:
        server.close()
        server.task_dispatcher.shutdown(timeout=1)
        thread.join(timeout=1)  # a daemon: keep-alive channels may hold the loop a little longer


class Receiver:
    """A webhook target: echoes the handshake secret, verifies signatures, records batches."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.batches: list[dict] = []
        self.bad_signatures = 0
        self.fail_next = 0  # answer 500 to this many deliveries
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                secret = self.headers.get("X-Hook-Secret")
                with receiver.lock:
                    if secret:
                        receiver.secret = secret
                        self.send_response(200)
                        self.send_header("X-Hook-Secret", secret)
                        self.end_headers()
                        return
                    expected = hmac.new((receiver.secret or "").encode(), body, hashlib.sha256).hexdigest()
                    if not hmac.compare_digest(expected, self.headers.get("X-Hook-Signature") or ""):
                        receiver.bad_signatures += 1
                        self.send_response(401)
                        self.end_headers()
                        return
                    if receiver.fail_next > 0:
                        receiver.fail_next -= 1
                        receiver.batches.append({"failed": True, **json.loads(body)})
                        self.send_response(500)
                        self.end_headers()
                        return
                    receiver.batches.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/asana/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Callable[[list[dict]], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.batches)):
                    return True
            time.sleep(0.05)
        return False
