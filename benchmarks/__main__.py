"""`python -m benchmarks [name …] [--json]` — run the registered benchmarks (all by default)."""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# name -> module; each module has add_arguments(parser) and run(args) -> dict of results.
BENCHMARKS = {
    "documents": "benchmarks.documents",
    "approvals": "benchmarks.approvals",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    modules = {name: importlib.import_module(path) for name, path in BENCHMARKS.items()}
    for module in modules.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    results = {}
    for name in args.names or list(BENCHMARKS):
        if name not in modules:
            parser.error(f"unknown benchmark {name!r}")
        results[name] = modules[name].run(args)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for name, values in results.items():
            print(f"== {name}")
            for key, value in (values or {}).items():
                print(f"  {key:34} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
