"""The `connector` sub-commands of the product (the sandbox adds `demo` and `sandbox` in development:
sandbox/cli/)."""

from integrations.cli import (
    check,
    config,
    evidence,
    health,
    links,
    purchase_requests,
    reconcile,
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
    evidence,
    health,
    links,
    purchase_requests,
    reconcile,
    roster,
    rotate_keys,
    replay,
    schedules,
    setup,
    sync,
    webhooks,
]
