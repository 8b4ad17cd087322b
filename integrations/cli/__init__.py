"""Sub-commands of `python manage.py connector`.

Each module listed in SUBCOMMANDS defines:
    NAME: str                   the sub-command word
    HELP: str                   one line for `connector --help`
    add_arguments(parser)       its own argparse arguments (it gets its own --help)
    run(options, out) -> int    does the work, prints what it did through `out`, returns the exit code
`out` has .write(text), .success(text), .error(text). Raise CommandError for a clean failure message.
"""

SUBCOMMANDS = [
    "integrations.cli.check",
    "integrations.cli.config",
    "integrations.cli.demo",
    "integrations.cli.health",
    "integrations.cli.links",
    "integrations.cli.purchase_requests",
    "integrations.cli.roster",
    "integrations.cli.rotate_keys",
    "integrations.cli.replay",
    "integrations.cli.sandbox",
    "integrations.cli.schedules",
    "integrations.cli.setup",
    "integrations.cli.sync",
    "integrations.cli.webhooks",
]
