"""Sub-commands of `python manage.py connector`.

Each module listed in integrations/cli/commands.py SUBCOMMANDS defines:
    NAME: str                   the sub-command word
    HELP: str                   one line for `connector --help`
    add_arguments(parser)       its own argparse arguments (it gets its own --help)
    run(options, out) -> int    does the work, prints what it did through `out`, returns the exit code
`out` has .write(text), .success(text), .error(text). Raise CommandError for a clean failure message.
"""
