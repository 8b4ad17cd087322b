"""Scale-out: a real deployment (web process + `qcluster`) processing the same documents concurrently.

PostgreSQL + Redis with two clusters of three workers (CI step 2), and the embedded default — SQLite
with the ORM broker and one worker — in `make test` (CI step 1). See scenario.py for the phases and
the invariants. The seed of every random choice is printed (SCALE_SEED=<n> replays the choices; the
timing of the processes is the machine's). On failure the end of every process's log is printed;
SCALE_KEEP_DATABASE=1 keeps the PostgreSQL database for a look afterwards.
"""

from __future__ import annotations

import pytest

from . import scenario
from .deployment import (
    Deployment,
    PostgresDatabase,
    SqliteDatabase,
    postgres_server_url,
    scale_redis_url,
)

pytestmark = pytest.mark.slow
# django-q2 titles a worker "… processing <task>" only with setproctitle (the `test` extra): the
# scenario kills busy workers only, and counts a titled worker as work in progress.
pytest.importorskip("setproctitle", reason='pip install -e ".[test]" (setproctitle)')


@pytest.mark.skipif(
    postgres_server_url() is not None, reason="the SQLite variant runs in the SQLite step (make test)"
)
def test_one_worker_on_sqlite_with_the_orm_broker(tmp_path):
    deployment = Deployment(tmp_path, SqliteDatabase(tmp_path), redis_url=None, workers=1)
    variant = scenario.Variant(
        clusters=1, workers=1, bills=50, purchase_orders=10, kills=1, changes=12, approvals=4
    )
    scenario.run(deployment, variant)


@pytest.mark.postgres
@pytest.mark.skipif(
    postgres_server_url() is None or scale_redis_url() is None,
    reason="needs DATABASE_URL=postgres://… and REDIS_URL (CI step 2)",
)
def test_several_workers_on_postgres_with_the_redis_broker(tmp_path):
    deployment = Deployment(
        tmp_path, PostgresDatabase(postgres_server_url()), redis_url=scale_redis_url(), workers=3
    )
    variant = scenario.Variant(
        clusters=2, workers=3, bills=160, purchase_orders=30, kills=2, changes=30, approvals=8
    )
    scenario.run(deployment, variant)
