"""Run inside a deployment's processes (tests/scale/deployment.py) for test_acumatica_session_rule.py:
`release_bill` is the task a qcluster worker runs (the product's Acumatica client releasing a bill),
and `python -m tests.sandbox.acumatica_workers enqueue JSON` queues [[func, *args], …] with django-q2.
"""

from __future__ import annotations

import json
import os
import sys

TASKS = {
    "release_bill": "tests.sandbox.acumatica_workers.release_bill",
    "process_document": "integrations.flows.documents.tasks.process_document",
}


def release_bill(connection_id: int, doc_type: str, number: str, attempt: int = 1) -> str:
    """Release through the product's client; a session busy past the inline wait (errors.Locked) is
    queued again, as the product's tasks reschedule it (at most 5 attempts)."""
    from django_q.tasks import async_task

    from integrations.acumatica.client import client_for
    from integrations.base import errors
    from integrations.models import AcumaticaConnection

    client = client_for(AcumaticaConnection.objects.get(pk=connection_id))
    try:
        return client.release_bill(doc_type, number)["Status"]
    except errors.Locked:
        if attempt >= 5:
            raise
        async_task(TASKS["release_bill"], connection_id, doc_type, number, attempt + 1)
        return "rescheduled"


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "connector_site.settings")
    import django

    django.setup()
    from django_q.tasks import async_task

    if argv[1] == "enqueue":
        calls = json.loads(argv[2])
        for call in calls:
            async_task(TASKS[call[0]], *call[1:])
        print(len(calls))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
