"""``python -m sage100_agent [serve|selftest] --config agent.toml``"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import ConfigError, load_config
from .server import build_backend, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sage100_agent",
        description="ml-connector Sage 100 agent (HTTPS, BOI or simulated backend)",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=("serve", "selftest"),
        help="serve (default) or selftest: check every BOI object, method and column, writing nothing",
    )
    parser.add_argument("--config", required=True, help="path to agent.toml")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
    parser.add_argument("--json", action="store_true", help="selftest: print JSON instead of the table")
    parser.add_argument("--verbose", action="store_true", help="selftest: one line per method and column")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(
            f"configuration OK: backend={config.backend} company={config.company} "
            f"listen={config.host}:{config.port} tls={'on' if config.tls_enabled else 'OFF (loopback only)'}"
        )
        return 0
    if args.command == "selftest":
        backend = build_backend(config)
        try:
            report = backend.selftest()
        finally:
            backend.close()
        print(json.dumps(report.to_json(), indent=2) if args.json else report.table(verbose=args.verbose))
        return 0 if report.ok else 1
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
