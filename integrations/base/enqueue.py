"""Queueing one task for django-q2's cluster at the cost the webhook receive path can afford (issue 17).

`enqueue_task(func, *args, task_name=…)` puts on the broker the package that
`django_q.tasks.async_task(func, *args, task_name=…)` puts there: the same task dict (`id`, `name`,
`func`, `args`, `kwargs`, `started`, and Q_CLUSTER's `cached` / `ack_failure` when set), sent to
django-q2's `pre_enqueue` signal, signed by django_q's SignedPackage and `enqueue`d on the cluster's
list by the configured broker (Redis, or the ORM when no REDIS_URL). The cluster — django-q2's pusher
or base/qcluster.guarded_pusher — reads and runs it exactly as one queued by async_task
(tests/flows/inbound/test_enqueue.py runs one through a worker).

What it leaves out, per task: the human-readable name django-q2 derives from every task's uuid even when
a name is given, a new broker object (this module keeps one per process), and the log line formatted
for the django_q logger (set to WARNING). In sync mode (Q_CLUSTER["sync"], the test suite) it *is*
async_task, looked up at call time: the task runs inline as before, and a test that replaces
`django_q.tasks.async_task` (a broker outage, a soak's queue) still sees every call.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

_brokers: dict[int, Any] = {}


def broker() -> Any:
    """The configured django-q2 broker of this process (a forked process builds its own)."""
    pid = os.getpid()
    found = _brokers.get(pid)
    if found is None:
        from django_q.brokers import get_broker

        _brokers.clear()
        found = _brokers[pid] = get_broker()
    return found


def enqueue_task(func: str, *args: Any, task_name: str | None = None) -> str:
    """Queue `func(*args)` (a dotted path) for the cluster, as async_task would; the task's id."""
    from django.utils import timezone
    from django_q import tasks as q_tasks
    from django_q.conf import Conf
    from django_q.signals import pre_enqueue
    from django_q.signing import SignedPackage

    if Conf.SYNC:
        return q_tasks.async_task(func, *args, task_name=task_name)
    task_id = uuid.uuid4().hex
    if task_name is None:
        from django_q.humanhash import humanize

        task_name = humanize(task_id)
    task: dict[str, Any] = {"id": task_id, "name": task_name, "func": func, "args": args}
    if Conf.CACHED:
        task["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        task["ack_failure"] = Conf.ACK_FAILURES
    task["kwargs"] = {}
    task["started"] = timezone.now()
    pre_enqueue.send(sender="django_q", task=task)
    broker().enqueue(SignedPackage.dumps(task))
    return task_id
