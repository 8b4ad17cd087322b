"""The attempt deadline bounds every wait of the HTTP base; a POST is retried only if it was not sent.

Real loopback sockets where the difference matters (a connection refused before sending, an answer
that never comes, a connection dropped after the request was sent)."""

import socket
import threading
import time

import pytest
import requests
import responses

from integrations.base import errors, session
from integrations.base.deadline import attempt_deadline
from integrations.base.http import HttpClient

BASE = "https://api.vendor.example/v1"


class Client(HttpClient):
    system = "vendor"
    private_network_allowed = True  # the loopback servers below


class EndlessWait:
    """A budget that never has room: every acquire asks for `wait` more seconds."""

    def __init__(self, wait):
        self.wait, self.asked, self.released = wait, 0, 0

    def acquire(self, *, write):
        self.asked += 1
        return self.wait

    def release(self, *, write):
        self.released += 1


def client(**kw):
    kw.setdefault("recorder", lambda record: None)
    kw.setdefault("max_retries", 3)
    kw.setdefault("max_inline_wait", 5.0)
    return Client(kw.pop("base", BASE), **kw)


class Server:
    """A loopback TCP server: `mode` "silent" reads the request and never answers; "drop" reads it
    and closes the connection without a word."""

    def __init__(self, mode):
        self.mode, self.accepted, self.received = mode, 0, b""
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(10)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            while True:
                conn, _ = self.sock.accept()
                self.accepted += 1
                conn.settimeout(10)
                self.received += conn.recv(65536)
                if self.mode == "drop":
                    conn.close()
                else:
                    self.conns.append(conn)
        except OSError:
            return

    def close(self):
        self.sock.close()
        for conn in self.conns:
            conn.close()


@responses.activate
def test_budget_waits_end_at_the_deadline_without_sending():
    limiter = EndlessWait(0.05)
    c = client(rate_limiter=limiter)
    responses.post(f"{BASE}/tasks", json={})
    started = time.monotonic()
    with attempt_deadline(0.4), pytest.raises(errors.DeadlineExceeded) as caught:
        c.request("POST", "/tasks", json_body={})
    assert time.monotonic() - started < 1.0
    assert not caught.value.sent and not caught.value.outcome_unknown and caught.value.retryable
    assert "rate budget" in str(caught.value) and "it was not sent" in str(caught.value)
    assert len(responses.calls) == 0 and limiter.asked >= 3


@responses.activate
def test_without_a_deadline_budget_waits_still_have_a_total_bound(settings):
    settings.HTTP_MAX_BUDGET_WAIT = 0.3
    sleeps = []
    c = client(rate_limiter=EndlessWait(0.1), sleep=sleeps.append)
    with pytest.raises(errors.RateLimited) as caught:
        c.request("GET", "/tasks")
    assert sum(sleeps) == pytest.approx(0.3) and len(sleeps) == 3
    assert caught.value.retry_after == 0.1 and len(responses.calls) == 0


@responses.activate
def test_a_retry_the_deadline_cannot_cover_is_not_waited_for():
    responses.post(f"{BASE}/tasks", status=429, headers={"Retry-After": "3"})
    sleeps = []
    c = client(sleep=sleeps.append)
    with attempt_deadline(1.0), pytest.raises(errors.DeadlineExceeded) as caught:
        c.request("POST", "/tasks", json_body={})
    error = caught.value
    assert error.sent and not error.outcome_unknown  # a 429 says nothing was done
    assert error.retry_after == 3.0 and sleeps == [] and len(responses.calls) == 1
    assert isinstance(error.__cause__, errors.RateLimited)


@pytest.mark.parametrize(("method", "unknown"), [("POST", True), ("GET", False)])
def test_the_read_timeout_is_cut_to_the_deadline(method, unknown):
    server = Server("silent")
    try:
        c = client(base=server.url, read_timeout=60.0)
        started = time.monotonic()
        with attempt_deadline(0.5), pytest.raises(errors.DeadlineExceeded) as caught:
            c.request(method, "/tasks", json_body={} if method == "POST" else None)
        assert time.monotonic() - started < 2.0  # not the 60 s read timeout
        assert caught.value.sent and caught.value.outcome_unknown is unknown
        assert "waiting for the answer" in str(caught.value)
        assert server.accepted == 1 and method.encode() in server.received  # it was sent, once
    finally:
        server.close()


def test_a_post_refused_before_connecting_is_retried_as_nothing_was_sent():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()  # nobody listens: connection refused
    records, sleeps = [], []
    c = client(base=url, max_retries=2, sleep=sleeps.append, recorder=records.append)
    with pytest.raises(errors.Unavailable) as caught:
        c.request("POST", "/tasks", json_body={})
    assert not caught.value.outcome_unknown
    assert len(records) == 3 and len(sleeps) == 2  # tried, then retried twice


def test_a_post_whose_connection_dropped_after_sending_is_never_retried():
    server = Server("drop")
    try:
        records = []
        c = client(base=server.url, max_retries=3, sleep=lambda s: None, recorder=records.append)
        with pytest.raises(errors.Unavailable) as caught:
            c.request("POST", "/tasks", json_body={"name": "x"})
        assert caught.value.outcome_unknown
        assert len(records) == 1 and server.accepted == 1
    finally:
        server.close()


@responses.activate
def test_requests_does_not_scan_the_environment_per_call_without_a_proxy(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    session._environment.cache_clear()
    scans = []
    real = requests.utils.get_environ_proxies
    monkeypatch.setattr(
        requests.sessions, "get_environ_proxies", lambda *a, **k: scans.append(a) or real(*a, **k)
    )
    monkeypatch.setattr(requests.sessions, "get_netrc_auth", lambda *a, **k: scans.append(a))
    responses.get(f"{BASE}/me", json={})
    c = client()
    for _ in range(3):
        c.request("GET", "/me")
    assert scans == [] and c.session.trust_env is False

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    session._environment.cache_clear()
    try:
        assert client().session.trust_env is True  # NO_PROXY must then be matched per URL
    finally:
        monkeypatch.delenv("HTTPS_PROXY")
        session._environment.cache_clear()


@responses.activate
def test_a_slot_taken_when_the_deadline_is_too_close_to_send_is_given_back(monkeypatch):
    from integrations.base import http

    limiter = EndlessWait(0)  # grants at once
    c = client(rate_limiter=limiter)
    monkeypatch.setattr(http, "remaining", lambda: 0.01)  # below MIN_REQUEST_TIME once the slot is held
    with pytest.raises(errors.DeadlineExceeded) as caught:
        c.request("POST", "/tasks", json_body={})
    assert not caught.value.sent and "before sending" in str(caught.value)
    assert limiter.asked == 1 and limiter.released == 1 and len(responses.calls) == 0
