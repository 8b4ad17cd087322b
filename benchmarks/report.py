"""The benchmark report: the machine it ran on, and every result as JSON and as Markdown tables."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        return subprocess.run(  # noqa: S603,S607 - fixed argv
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, Any]:
    import django

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git_commit(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "django": django.get_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def write(document: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "report.json"
    md_path = directory / "report.md"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    md_path.write_text(markdown(document))
    return [md_path, json_path]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell(v)}" for k, v in value.items()) or "—"
    return str(value).replace("|", "\\|")


def _tables(title: str, values: dict[str, Any], depth: int) -> list[str]:
    flat = {k: v for k, v in values.items() if not isinstance(v, dict) or not _nested(v)}
    nested = {k: v for k, v in values.items() if isinstance(v, dict) and _nested(v)}
    lines = [f"{'#' * depth} {title}", ""]
    if flat:
        lines += ["| measure | value |", "|---|---|"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in flat.items()]
        lines.append("")
    for key, sub in nested.items():
        lines += _tables(f"{title} / {key}", sub, min(depth + 1, 4))
    return lines


def _nested(value: dict[str, Any]) -> bool:
    return len(value) > 4 or any(isinstance(v, dict) for v in value.values())


def markdown(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        "# ml-connector benchmark report"
        + (" (quick: smoke sizes, not measurements)" if document["quick"] else ""),
        "",
        f"{m['date']}, commit {m['commit']}: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"{m['os']}, Python {m['python']}, Django {m['django']}; load average (1, 5, 15 min) at start "
        f"{', '.join(str(x) for x in m['load_average_at_start'])}, at end "
        f"{', '.join(str(x) for x in m.get('load_average_at_end', []))}.",
        "",
        "Wall time per benchmark (s): "
        + ", ".join(f"{k} {v}" for k, v in document["wall_s"].items() if k != "total")
        + f"; total {document['wall_s']['total']} s.",
        "",
        "1-minute load average as each benchmark started: "
        + ", ".join(f"{k} {v}" for k, v in document.get("load_average_1min_at_start", {}).items()),
        "",
    ]
    for name, values in document["results"].items():
        lines += _tables(name, values if isinstance(values, dict) else {"result": values}, 2)
    return "\n".join(lines) + "\n"
