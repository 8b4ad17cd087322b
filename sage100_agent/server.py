"""Building and serving the agent.

* :func:`create_app` — config -> WSGI app (backend + ledger wired in).
* :func:`serve` — blocking, for ``python -m sage100_agent``.
* :func:`start_in_thread` — a running agent on a loopback port, for tests and the connector's sandbox.

TLS (docs/sage100-agent.md §6): Waitress does not terminate TLS (its docs: "Waitress does not natively
support TLS"; it expects a reverse proxy). So the TLS listener is Cheroot (CherryPy's pure-Python WSGI
server) with the standard library ``ssl`` module, TLS 1.2 minimum. Waitress serves plain HTTP, allowed
only on loopback (tests, sandbox, or behind an operator-run TLS terminator on the same host).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from .app import AgentApp
from .backend import Backend
from .config import AgentConfig
from .ledger import Ledger

log = logging.getLogger("sage100_agent")


def build_backend(config: AgentConfig) -> Backend:
    """The configured backend. BOI imports pywin32 lazily, so this works on Linux for ``simulated``."""
    if config.backend == "simulated":
        from .simulated import SimulatedBackend

        backend = SimulatedBackend(config.simulated_state_path, company=config.company, tz=config.timezone())
        if config.simulated_seed_demo:
            backend.seed_demo()
        return backend
    from .boi import BOIBackend

    return BOIBackend.from_config(config)


def create_app(config: AgentConfig, backend: Backend | None = None, ledger: Ledger | None = None) -> AgentApp:
    """WSGI app for ``config``; pass ``backend``/``ledger`` to inject your own (tests, sandbox)."""
    return AgentApp(
        config,
        backend or build_backend(config),
        ledger or Ledger(config.ledger_path, stale_after=config.write_timeout_seconds * 2),
    )


def tls_context(cert: str, key: str, password: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key, password=password or None)
    return context


@dataclass
class RunningAgent:
    """Handle on an agent served from a background thread."""

    app: AgentApp
    host: str
    port: int
    scheme: str
    _server: Any
    _thread: threading.Thread
    _kind: str

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def backend(self) -> Backend:
        return self.app.backend

    def stop(self) -> None:
        """Stop serving; safe to call twice (a test may stop the agent, then its fixture does too)."""
        if not self._thread.is_alive():
            return
        if self._kind == "cheroot":
            self._server.stop()
        else:
            from waitress import wasyncore

            # Close the sockets from inside the event loop (via its trigger), so select() never sees a
            # descriptor closed under it; the loop exits once its map is empty.
            server = self._server
            # OSError: the loop already closed its trigger, so it is on its way out.
            with contextlib.suppress(OSError):
                server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
            self._thread.join(timeout=10)
            server.task_dispatcher.shutdown()
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cheroot_server(
    app: AgentApp, host: str, port: int, threads: int, cert: str, key: str, password: str
) -> Any:
    from cheroot import wsgi
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    server = wsgi.Server((host, port), app, numthreads=threads, server_name="ml-connector-sage100-agent")
    adapter = BuiltinSSLAdapter(cert, key, private_key_password=password or None)
    adapter.context = tls_context(cert, key, password)
    server.ssl_adapter = adapter
    return server


def start_in_thread(
    app: AgentApp,
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    threads: int = 4,
) -> RunningAgent:
    """Serve ``app`` on ``host:port`` (0 = any free port) from a daemon thread; return a handle.

    With ``tls_cert``/``tls_key`` the listener is HTTPS (Cheroot); without, plain HTTP (Waitress),
    which is refused on anything but loopback.
    """
    if tls_cert and tls_key:
        server = _cheroot_server(app, host, port, threads, tls_cert, tls_key, app.config.tls_key_password)
        server.prepare()
        bound_port = server.bind_addr[1]
        thread = threading.Thread(target=server.serve, name="sage100-agent-tls", daemon=True)
        thread.start()
        return RunningAgent(app, host, bound_port, "https", server, thread, "cheroot")
    if host not in ("127.0.0.1", "::1", "localhost"):
        raise ValueError("plain HTTP is only served on loopback; give tls_cert and tls_key")
    from waitress import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident="ml-connector-sage100-agent")
    thread = threading.Thread(target=server.run, name="sage100-agent-http", daemon=True)
    thread.start()
    return RunningAgent(app, host, int(server.effective_port), "http", server, thread, "waitress")


def serve(config: AgentConfig) -> None:
    """Run until interrupted (the Windows service wrapper stops the process)."""
    app = create_app(config)
    try:
        if config.tls_enabled:
            server = _cheroot_server(
                app,
                config.host,
                config.port,
                config.threads,
                config.tls_cert,
                config.tls_key,
                config.tls_key_password,
            )
            log.info(
                "serving HTTPS on %s:%s (backend %s, company %s)",
                config.host,
                config.port,
                config.backend,
                config.company,
            )
            try:
                server.safe_start()
            finally:
                server.stop()
        else:
            from waitress import serve as waitress_serve

            log.warning(
                "serving PLAIN HTTP on loopback %s:%s — for a local TLS terminator or tests only",
                config.host,
                config.port,
            )
            waitress_serve(app, host=config.host, port=config.port, threads=config.threads)
    finally:
        app.backend.close()
        app.ledger.close()
        app.nonces.close()
