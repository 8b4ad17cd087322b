"""``python -m integrations.sage100.agent --config agent.toml``"""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, load_config
from .server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integrations.sage100.agent",
        description="ml-connector Sage 100 agent (HTTPS, BOI or simulated backend)",
    )
    parser.add_argument("--config", required=True, help="path to agent.toml")
    parser.add_argument("--check", action="store_true", help="validate the configuration and exit")
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
    serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
