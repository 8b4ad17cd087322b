"""Screenshots of each setup-wizard step for the operator guide, taken from the real pages.

    .venv/bin/python docs/screenshots.py          (or: python -m docs.screenshots, from the repo root)

Runs the browser test that walks the whole wizard against the sandboxes
(tests/browser/test_setup_wizard.py) with WIZARD_SCREENSHOTS pointing at docs/images/, where each step
is saved as wizard-<n>-<step>.jpg; docs/operator-guide.md ("Set up a customer") shows them. Needs
Playwright and Debian's Chromium (/usr/bin/chromium), like the browser suite; exits non-zero when the
walk fails, so stale pictures are never produced from a broken wizard.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def main() -> int:
    IMAGES.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WIZARD_SCREENSHOTS": str(IMAGES)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        "tests/browser/test_setup_wizard.py",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)  # noqa: S603 - our own pytest
    if result.returncode == 0:
        for image in sorted(IMAGES.glob("wizard-*.jpg")):
            print(f"{image.relative_to(ROOT)}  {image.stat().st_size // 1024} KiB")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
