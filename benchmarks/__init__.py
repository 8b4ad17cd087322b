"""Benchmarks run with `python -m benchmarks [name …]` against the in-process sandboxes (not timed tests).

Each module registered in `benchmarks.__main__.BENCHMARKS` has `run(args) -> dict` and
`add_arguments(parser)`; results are reported in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import os
import tempfile


def setup_django() -> str:
    """Django on a throw-away SQLite database (test settings: test keys, django-q2 in sync mode)."""
    scratch = tempfile.mkdtemp(prefix="ml-bench-")
    path = os.path.join(scratch, "bench.sqlite3")
    os.environ["ML_CONNECTOR_VAR_DIR"] = scratch  # fresh rate-budget state: the clocks are simulated
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector_site.settings_test")
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.pop("REDIS_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return path
