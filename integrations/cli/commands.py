"""The `connector` sub-commands of the product (the sandbox adds `demo` and `sandbox` in development:
sandbox/cli/)."""

from integrations.cli import (
    check,
    config,
    health,
    links,
    purchase_requests,
    replay,
    roster,
    rotate_keys,
    schedules,
    setup,
    sync,
    webhooks,
)

SUBCOMMANDS = [
    check,
    config,
    health,
    links,
    purchase_requests,
    roster,
    rotate_keys,
    replay,
    schedules,
    setup,
    sync,
    webhooks,
]
