"""Fixtures and the hypothesis profile of the security suite.

The fuzz tests run under the `security` profile: bounded for CI (each property a fixed number of
examples, no deadline), derandomized so a failure reproduces on every run, no example database written
to the work tree. `SECURITY_FUZZ_EXAMPLES=N` raises the count for a longer local run, with a fresh
random seed printed by hypothesis on failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_deep = int(os.environ.get("SECURITY_FUZZ_EXAMPLES", "0") or 0)
settings.register_profile(
    "security",
    max_examples=_deep or 150,
    deadline=None,
    derandomize=not _deep,
    print_blob=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one database and client per test, examples clean up
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
FUZZ = settings.get_profile("security")
