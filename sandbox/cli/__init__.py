"""`connector demo` and `connector sandbox`: development sub-commands, attached to `connector` when the
sandbox package is present (a source checkout; the wheel does not ship it). They import the simulators
only when they run, so `connector --help` imports none."""

from sandbox.cli import demo, sandbox

SUBCOMMANDS = [demo, sandbox]
