"""The layout's contract (issue: one home per flow, wiring that points down), checked in `make test`:
the import-linter contracts of pyproject.toml, no product module over 500 lines, every module of the
product on a floor, and `connector --help` importing no simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("connector_site", "integrations", "mappings", "audit", "sage100_agent")
MAX_LINES = 500


def _modules(package: str) -> list[str]:
    out = []
    for path in (ROOT / package).rglob("*.py"):
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts:
            continue
        out.append(".".join(rel.with_suffix("").parts).removesuffix(".__init__"))
    return out


def test_import_contracts_hold():
    """Five floors, flows independent, the agent free of Django, no sandbox in the product, no cycles."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_product_module_over_500_lines():
    long = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                lines = len(path.read_text().splitlines())
                if lines > MAX_LINES:
                    long[str(path.relative_to(ROOT))] = lines
    assert not long, f"split these by responsibility: {long}"


def test_every_product_module_is_on_a_floor():
    """A new module outside every floor would escape the layers contract: name its floor in pyproject."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["id"] == "floors")["layers"]
    floors = [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]
    # Composition roots and configuration, outside the floors by design.
    outside = {
        "connector_site",
        "connector_site.settings",
        "connector_site.settings_test",
        "connector_site.broker",
        "integrations",
        "integrations.apps",
        "integrations.base",
        "mappings",
        "mappings.apps",
        "audit",
        "audit.apps",
    }
    unplaced = [
        m
        for package in PRODUCT
        if package != "sage100_agent"
        for m in _modules(package)
        if m not in outside and not any(m == f or m.startswith(f + ".") for f in floors)
    ]
    assert not unplaced, f"put these on a floor in [tool.importlinter] (pyproject.toml): {unplaced}"


def test_connector_help_imports_no_simulator():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "connector_site.settings_test"}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "connector", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    simulators = sorted(m for m in imported if m.startswith("sandbox.") and not m.startswith("sandbox.cli"))
    assert not simulators, simulators
    assert "sandbox.cli" in imported  # the development sub-commands are there, as definitions only
