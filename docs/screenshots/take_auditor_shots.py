"""Refresh the operator guide's auditor pictures: the reconciliation page, the evidence export page and
the first page of an evidence PDF, taken by the browser suite against the served sandboxes.

    .venv/bin/python docs/screenshots/take_auditor_shots.py

Runs tests/browser/test_auditor.py with ML_CONNECTOR_DOCS_SHOTS pointing here; the test copies
12-reconciliation.jpg, 13-evidence-export.jpg and 15-evidence-pdf.png (pdftoppm, from Debian's
poppler-utils) into this directory. Needs Chromium at /usr/bin/chromium and Playwright, like the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main() -> int:
    env = {**os.environ, "ML_CONNECTOR_DOCS_SHOTS": str(HERE)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "tests/browser/test_auditor.py",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter and test path
    if result.returncode == 0:
        for name in ("12-reconciliation.jpg", "13-evidence-export.jpg", "15-evidence-pdf.png"):
            path = HERE / name
            print(
                f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes"
                if path.exists()
                else f"{name}: missing"
            )
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
