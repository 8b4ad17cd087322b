"""Browser suite: Playwright driving Debian's headless Chromium against a live console.

The sandboxes are served over real HTTP on loopback (waitress in threads, as `connector sandbox`
does), so the console talks to them exactly as it would to the vendors. No browser download: the
suite uses /usr/bin/chromium and skips, with the reason, when it or Playwright is missing.
Screenshots go to test-artifacts/screenshots/ (gitignored): a full-page PNG and a compressed JPEG of
each step; docs/screenshots/ holds copies of the JPEGs the operator guide shows.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Playwright's sync API runs an event loop in the test thread; the ORM calls made beside it are sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
JPEG_QUALITY = 55
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = None
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        reason = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = 'Playwright is not installed (pip install -e ".[browser]")'
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def shot(page):
    SHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> Path:
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        # the guide's copy: JPEG at a quality that keeps the text legible and the docs small
        page.screenshot(path=str(SHOTS / f"{name}.jpg"), type="jpeg", quality=JPEG_QUALITY, full_page=True)
        return path

    return take


def _serve(build):
    """Serve a simulator on an ephemeral loopback port; `build(base)` makes it once the port is known."""
    from waitress.server import create_server

    holder = {}
    server = create_server(
        lambda env, start: holder["sim"].wsgi_app(env, start), host="127.0.0.1", port=0, threads=4
    )
    base = f"http://127.0.0.1:{server.effective_port}"
    holder["sim"] = build(base)
    threading.Thread(target=server.run, daemon=True).start()
    return holder["sim"], base, server


@pytest.fixture
def sandboxes():
    from sandbox import acumatica as acu_sim
    from sandbox import asana as asana_sim

    acu, acu_base, s1 = _serve(lambda base: acu_sim.build_demo(base + "/AcumaticaERP"))
    asana, asana_base, s2 = _serve(lambda base: asana_sim.build_demo(base + "/api/1.0"))
    yield {
        "acu": acu,
        "acu_url": acu_base + "/AcumaticaERP",
        "asana": asana,
        "asana_url": asana_base + "/api/1.0",
    }
    s1.close()
    s2.close()
