"""`python manage.py connector <sub-command>`: one command, sub-commands in integrations/cli/."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from integrations.cli.commands import SUBCOMMANDS


def subcommands() -> list:
    """The product's sub-commands, plus the sandbox's where the sandbox package is present."""
    try:
        from sandbox.cli import SUBCOMMANDS as development
    except ImportError:  # an installed wheel: no sandbox
        development = []
    return [*SUBCOMMANDS, *development]


class _Out:
    def __init__(self, command: BaseCommand):
        self._cmd = command

    def write(self, text: str = "") -> None:
        self._cmd.stdout.write(text)

    def success(self, text: str) -> None:
        self._cmd.stdout.write(self._cmd.style.SUCCESS(text))

    def warning(self, text: str) -> None:
        self._cmd.stdout.write(self._cmd.style.WARNING(text))

    def error(self, text: str) -> None:
        self._cmd.stderr.write(self._cmd.style.ERROR(text))


class Command(BaseCommand):
    help = "ml-connector operations: check, config, sync, webhooks, replay, sandbox, rotate-keys."

    def add_arguments(self, parser):
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="Act as this console user, within their tenant roles (default: the system actor, audited)",
        )
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        self._modules = {}
        for module in subcommands():
            p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
            module.add_arguments(p)
            self._modules[module.NAME] = module

    def handle(self, *args, **options):
        from integrations.cli.actor import resolve

        module = self._modules[options["subcommand"]]
        resolve(options)
        code = module.run(options, _Out(self))
        if code:
            raise CommandError(f"connector {module.NAME} failed (exit {code})", returncode=code)
