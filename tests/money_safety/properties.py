"""What the money-safety state machines share: how many examples a run draws and how it reports."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

# CI draws 30 examples per machine; MONEY_PROPERTY_EXAMPLES=300 for a long local run. A failure prints
# the falsifying steps and a @reproduce_failure blob that replays it.
EXAMPLES = int(os.environ.get("MONEY_PROPERTY_EXAMPLES", "30"))


def run_machine(machine: type, *, steps: int) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=steps,
            deadline=None,
            print_blob=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
