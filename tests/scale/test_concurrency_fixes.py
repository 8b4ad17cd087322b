"""The defects the scale-out run found, pinned down one by one in process (fast, every run).

- Two workers holding copies of one bill read at different moments: the older copy must never be
  written over the newer one (a poll page read before a push was handled).
- Two workers scheduling the same retry: the second one's pass must go on.
- Workers sharing one Acumatica session: while one runs a long operation (a release), the others wait
  at the connection's session gate instead of failing inside Acumatica.
- Workers renewing the shared Acumatica token together: one renews, the others adopt its token (one
  grant, one seat, one refresh chain) instead of revoking each other's refresh token.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from integrations.acumatica.client import client_for
from integrations.base import errors
from integrations.flows.documents import tasks as document_tasks
from integrations.models import AcumaticaConnection, RecordLink
from tests.flows.documents.test_documents_support import *  # noqa: F403
from tests.flows.documents.test_documents_support import F, writes


def test_an_older_copy_of_a_bill_never_overwrites_the_newer_one_already_synced(make_sync, asana, acu):
    make_sync().process("Bill", "000001")
    sync = make_sync()
    page_copy = sync.read("Bill", "000001")  # a poll pass read its page…
    acu.update_record("Bill", ("Bill", "000001"), Amount=19000.5)  # …then someone edited the bill
    assert make_sync().process("Bill", "000001").plan.action == "update"  # the push's worker
    seen = len(asana.requests)

    outcome = sync.process("Bill", "000001", record=page_copy)  # the pass reaches its old copy

    assert outcome.plan.action == "skip" and "stale copy" in outcome.plan.reason
    assert writes(asana, seen) == []
    link = RecordLink.objects.get(acumatica_ref="000001")
    assert asana.task_values(link.asana_task_gid)[F["amount"]] == 19000.5
    assert link.last_payload["custom_fields"][F["amount"]] == 19000.5
    entry = AuditEntry.objects.filter(record_link=link).first()  # newest first
    assert entry.status == "skipped" and "stale copy" in entry.error


def test_the_same_copy_again_is_not_stale(make_sync, asana, acu):
    make_sync().process("Bill", "000001")
    copy = make_sync().read("Bill", "000001")
    outcome = make_sync().process("Bill", "000001", record=copy)
    assert (outcome.plan.action, outcome.plan.reason) == ("skip", "unchanged")


def test_two_workers_asking_for_the_same_retry_both_go_on(db):
    """The scale-out run lost a whole poll pass to django-q2 refusing (IntegrityError) a retry another
    worker had just scheduled under the same name: asking twice for one record's retry never raises."""
    from django_q.models import Schedule

    document_tasks.schedule_document(1, "Bill", "000001", delay=5)
    document_tasks.schedule_document(1, "Bill", "000001", delay=5)  # the other worker, a moment later
    assert Schedule.objects.filter(name="retry:1:Bill/000001", repeats=1).count() == 1


@pytest.fixture
def shared_connection(docs_tenant) -> AcumaticaConnection:
    return docs_tenant.acumatica


def test_a_long_operation_holds_the_shared_session_and_other_workers_wait_for_it(shared_connection):
    releasing, reading = client_for(shared_connection), client_for(shared_connection)
    waited: list[float] = []
    reading.sleep = waited.append
    reading.max_inline_wait = 2.0

    with releasing._exclusive_session("Bill ReleaseBill"):
        with pytest.raises(errors.Locked) as refused:
            reading._pass_session_gate("GET /Bill/Bill/000001")
        assert "another worker's long operation" in str(refused.value)
        assert refused.value.retry_after and sum(waited) >= 2.0  # it waited its inline limit first
        assert releasing._holding_gate  # its own status polling passes (request() skips the gate)

    waited.clear()
    reading._pass_session_gate("GET /Bill/Bill/000001")
    assert waited == []  # the session is free again at once
    assert reading.session_gate.in_flight() == 0  # passing only looks: a worker killed there holds nothing


def test_a_cookie_session_is_the_clients_own_and_has_no_gate(shared_connection):
    shared_connection.auth_mode = "cookie"
    assert client_for(shared_connection).session_gate is None


def test_the_release_runs_inside_the_gate(shared_connection, mounted, acu, now):
    client = client_for(shared_connection, sleep=now.sleep)
    other = client_for(shared_connection, sleep=now.sleep)
    other.max_inline_wait = 0.5
    seen_during: list[str] = []

    def poll_while_held(seconds: float) -> None:  # the release's status polling sleeps here
        try:
            other._pass_session_gate("GET from another worker")
            seen_during.append("passed")
        except errors.Locked:
            seen_during.append("waited")
        now.sleep(seconds)

    client.sleep = poll_while_held
    bill = client.release_bill("Bill", "000001")
    assert bill["Status"] == "Open"
    assert seen_during and set(seen_during) == {"waited"}
    other._pass_session_gate("GET after the release")  # free again


def token_requests(acu) -> int:
    return sum(1 for _m, path, _s in acu.request_log if path == "/identity/connect/token")


def test_workers_renewing_the_token_together_keep_one_grant_and_one_refresh_chain(
    shared_connection, mounted, acu
):
    first = client_for(shared_connection)
    first.get_vendor("ABCCONCRETE")  # the first worker signs in (one grant)
    second = client_for(AcumaticaConnection.objects.get(pk=shared_connection.pk))  # another worker
    for worker in (first, second):
        worker.auth.expires_at = timezone.now()  # both see the token about to expire
    first.get_vendor("ABCCONCRETE")  # renews with the refresh token (which is then revoked)
    asked = token_requests(acu)

    assert second.get_vendor("STEELWORKS")["VendorName"] == "Tri-County Steelworks"

    assert token_requests(acu) == asked  # it adopted the renewed token: no request, no revoked token
    assert second.auth.access_token == first.auth.access_token
    assert len(acu.grants) == 1  # still one grant: no fallback to a second password grant (seat)
    row = AcumaticaConnection.objects.get(pk=shared_connection.pk)
    assert row.refresh_token in acu.refresh_tokens


def test_a_token_refused_with_401_is_never_adopted_back(shared_connection, mounted, acu):
    worker = client_for(shared_connection)
    worker.get_vendor("ABCCONCRETE")
    acu.expire_access_tokens()  # the server dropped it; the database still says it is valid
    asked = token_requests(acu)
    assert worker.get_vendor("ABCCONCRETE")["VendorID"] == "ABCCONCRETE"
    assert token_requests(acu) == asked + 1  # renewed, not re-adopted from the row
