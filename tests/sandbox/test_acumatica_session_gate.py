"""The product client's session gate closes the window between a worker's look at the gate and its
request (issue 15 hole 5), in process and deterministic: a release is started exactly inside that
window, and the sandbox Acumatica records any request that reaches the session while it runs."""

from __future__ import annotations

import threading
import time

import pytest

from integrations.acumatica.client import client_for
from integrations.base import errors
from tests.flows.documents.test_documents_support import *  # noqa: F403


class ReleaseInTheWindow:
    """A rate limiter whose acquire (after the session checks, before the send) starts another
    worker's release and gives it time to reach Acumatica first if nothing stops it."""

    def __init__(self, start_release) -> None:
        self.start_release = start_release
        self.armed = False

    def acquire(self, *, write: bool) -> float:
        if self.armed:
            self.armed = False
            self.start_release()
            time.sleep(0.4)
        return 0.0

    def release(self, *, write: bool) -> None:
        return None


def test_a_release_cannot_slip_in_between_a_workers_look_and_its_request(docs_tenant, mounted, acu):
    acu.release_polls = 1
    conn = docs_tenant.acumatica
    reader, writer = client_for(conn), client_for(conn)
    writer.poll_interval = 0.02
    writer.max_inline_wait = 5.0
    outcome: dict = {}

    def release() -> None:
        try:
            outcome["bill"] = writer.release_bill("Bill", "000001")
        except errors.ConnectorError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=release)
    reader.rate_limiter = ReleaseInTheWindow(thread.start)
    assert reader.get_vendor("ABCCONCRETE")["VendorID"] == "ABCCONCRETE"  # signed in (one grant)
    writer.get_vendor("STEELWORKS")  # the writer adopts the grant and reads the bill's status later

    reader.rate_limiter.armed = True
    assert reader.get_vendor("RIVERLUMBER")["VendorName"] == "River Valley Lumber"
    thread.join(timeout=10)

    assert acu.overlaps == [], acu.overlaps
    assert outcome.get("bill", {}).get("Status") == "Open", outcome
    paths = [p for _m, p, _s in acu.request_log]
    vendor_get = max(i for i, p in enumerate(paths) if p.endswith("/Vendor/RIVERLUMBER"))
    release_post = paths.index(next(p for p in paths if p.endswith("/Bill/ReleaseBill")))
    assert vendor_get < release_post  # the release waited for the request already in the session
    assert reader.session_users.in_flight() == 0 and reader.session_gate.in_flight() == 0


def test_a_status_url_answering_200_is_not_taken_for_completion(docs_tenant, mounted, acu):
    """The official client fails on any status answer but 202/204 (reference §5.2)."""
    client = client_for(docs_tenant.acumatica, sleep=lambda s: None)
    acu.faults.add("status", path=r"/status/", status=200, body={})
    with pytest.raises(errors.UnexpectedResponse) as info:
        client.release_bill("Bill", "000001")
    assert info.value.outcome_unknown and info.value.status == 200
