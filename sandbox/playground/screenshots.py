"""Screenshots of the playground for the README, kept current by a script.

    python -m sandbox.playground.screenshots        (from the repository's root, the venv's Python)

runs the playground's browser test (tests/browser/test_playground.py: `make run`'s installation in one
process, a new operator entering a bill, approving its task and watching it released) with
PLAYGROUND_SHOTS_DIR set, so each step's screenshot is also written as a JPEG to docs/images/. Needs
Playwright and Debian's Chromium, like the browser suite; exits with pytest's status.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/browser/test_playground.py"


def main() -> int:
    target = ROOT / "docs" / "images"
    env = dict(os.environ, PLAYGROUND_SHOTS_DIR=str(target))
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", TEST]
    status = subprocess.call(command, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter and test
    if status == 0:
        for shot in sorted(target.glob("playground-*.jpg")):
            print(f"{shot.relative_to(ROOT)}  {shot.stat().st_size // 1024} KB")
    return status


if __name__ == "__main__":
    sys.exit(main())
