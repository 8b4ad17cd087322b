"""Fixtures for the playground: sandboxes served over loopback HTTP (as `make run` serves them, in
another thread here rather than another process), the demo tenant wired to them, and the playground
mounted (SANDBOX_PLAYGROUND on, the URLconf reloaded) for the test only."""

from __future__ import annotations

import importlib
import threading

import pytest
from django.urls import clear_url_caches


def serve(build, threads: int = 4):
    """Serve a simulator on an ephemeral loopback port; `build(base)` makes it once the port is known."""
    from waitress.server import create_server

    holder = {}
    server = create_server(
        lambda env, start: holder["sim"].wsgi_app(env, start), host="127.0.0.1", port=0, threads=threads
    )
    base = f"http://127.0.0.1:{server.effective_port}"
    holder["sim"] = build(base)
    threading.Thread(target=server.run, daemon=True).start()
    return holder["sim"], base, server


def reload_urls() -> None:
    import connector_site.urls

    importlib.reload(connector_site.urls)
    clear_url_caches()


@pytest.fixture
def playground_on(settings):
    settings.SANDBOX_PLAYGROUND = True
    settings.SANDBOX_PLAYGROUND_TENANT = "demo"
    reload_urls()
    yield
    settings.SANDBOX_PLAYGROUND = False
    reload_urls()


@pytest.fixture
def served_demo(db, settings):
    """The demo tenant (`connector demo`'s document) against served Acumatica and Asana sandboxes; the
    Sage 100 agent is not served."""
    from integrations.config_io import apply_document
    from integrations.models import Tenant
    from sandbox import acumatica as acu_sim
    from sandbox import asana as asana_sim
    from sandbox import demo

    settings.HTTP_MAX_RETRIES = 0
    acu, acu_base, s1 = serve(lambda base: acu_sim.build_demo(base + "/AcumaticaERP"))
    asana, asana_base, s2 = serve(
        lambda base: asana_sim.build_demo(base + "/api/1.0", allow_localhost=True, max_delivery_failures=0)
    )
    doc = demo.tenant_document()
    doc["acumatica"]["instance_url"] = acu_base + "/AcumaticaERP"
    doc["asana"]["api_base_url"] = asana_base + "/api/1.0"
    doc["sage100"]["agent_url"] = "https://127.0.0.1:9"  # not served
    apply_document(doc, source="demo")
    yield {"tenant": Tenant.objects.get(slug=demo.TENANT_SLUG), "acu": acu, "asana": asana}
    s1.close()
    s2.close()
