"""`python -m benchmarks [name …] [--quick] [--json]` — run the benchmarks and write the report.

Each benchmark runs in a fresh Python process of its own (its own Django settings and database, and a
peak RSS that is its own), one after the other; the parent gathers their results and writes
`<report-dir>/report.json` and `report.md` (default var/benchmarks/) with the machine they ran on.
`--quick` shrinks every benchmark to a smoke size (about a minute in all): the numbers are then only
a check that everything runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import report

# name -> module; each module has add_arguments(parser), quick(args) and run(args) -> dict of results.
BENCHMARKS = {
    "documents": "benchmarks.documents",
    "flows": "benchmarks.flows",
    "approvals": "benchmarks.approvals",
    "webhook_burst": "benchmarks.webhook_burst",
    "ingest": "benchmarks.ingest",
    "rate": "benchmarks.rate",
    "backfill": "benchmarks.backfill",
    "budget": "benchmarks.budget",
    "rate_workers": "benchmarks.rate_workers",
    "retention_purge": "benchmarks.retention_purge",
}
ROOT = Path(__file__).resolve().parent.parent


def _parser(modules: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--quick", action="store_true", help="smoke sizes: checks that all runs")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--report-dir", default=str(ROOT / "var" / "benchmarks"), help="where to write")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # child mode
    parser.add_argument("--result-file", default="", help=argparse.SUPPRESS)
    for module in modules.values():
        module.add_arguments(parser)
    return parser


def _child(module, args) -> int:
    """Run one benchmark in this process and write its result (child mode)."""
    import logging

    logging.disable(logging.INFO)  # the flows log every record at INFO; keep the output readable
    if args.quick:
        module.quick(args)
    result = module.run(args)
    Path(args.result_file).write_text(json.dumps(result, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    modules = {name: importlib.import_module(path) for name, path in BENCHMARKS.items()}
    parser = _parser(modules)
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    for name in names:
        if name not in modules:
            parser.error(f"unknown benchmark {name!r}")
    if args.in_process:
        return _child(modules[names[0]], args)
    options = [a for a in argv if a not in names]
    results: dict = {}
    timings: dict = {}
    loads: dict = {}
    host = report.machine()  # before the runs: the load average says how busy the machine was
    started = time.perf_counter()
    failed = False
    for name in names:
        print(f"== {name}", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            result_file = fh.name
        loads[name] = round(os.getloadavg()[0], 2)
        t0 = time.perf_counter()
        code = subprocess.call(  # noqa: S603 - our own module
            [
                sys.executable,
                "-m",
                "benchmarks",
                name,
                "--in-process",
                "--result-file",
                result_file,
                *options,
            ],
            cwd=str(ROOT),
        )
        timings[name] = round(time.perf_counter() - t0, 1)
        text = Path(result_file).read_text() if os.path.exists(result_file) else ""
        os.unlink(result_file)
        if code != 0 or not text:
            results[name] = {"error": f"exited with {code}"}
            failed = True
        else:
            results[name] = json.loads(text)
        print(f"   {name}: {timings[name]} s", flush=True)
        partial = {"machine": host, "quick": args.quick, "wall_s": timings, "results": results}
        Path(args.report_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.report_dir) / "partial.json").write_text(json.dumps(partial, indent=2, default=str))
    total = round(time.perf_counter() - started, 1)
    host["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    document = {
        "machine": host,
        "load_average_1min_at_start": loads,
        "quick": args.quick,
        "wall_s": {"total": total, **timings},
        "results": results,
    }
    paths = report.write(document, Path(args.report_dir))
    if args.json:
        print(json.dumps(document, indent=2, default=str))
    else:
        print(report.markdown(document))
    print(f"Report: {', '.join(str(p) for p in paths)} (total {total} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
