"""`/hooks/asana/<uuid>/` and `/hooks/acumatica/<uuid>/` fuzzed through Django's test client.

Two properties per endpoint, each over a few hundred generated requests (methods, path uuids, bodies,
headers, content types, encodings, sizes around the cap):
- without a valid signature / shared secret: the answer is 4xx, and nothing happens but a REJECTED
  InboundEvent: no queued or processed event, no django-q task, the Asana webhook rows unchanged
  (secret, state, heartbeat), the Acumatica connection unchanged;
- with a valid signature over a malformed body (random bytes, invalid UTF-8, deep or wrong-typed JSON):
  2xx or 4xx, never a 5xx (a 5xx makes the vendor retry the same poison for a day).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from audit.models import InboundEvent
from integrations.asana import webhooks as asana_webhooks
from integrations.models import AcumaticaConnection, AsanaConnection, AsanaWebhook, Tenant

from .conftest import FUZZ
from .strategies import LATIN1, json_leaf, json_values

CAP = 4096
ASANA_SECRET = "asana-hook-secret-" + "7" * 46
PUSH_SECRET = "acumatica-push-secret-0123456789"
PUSH_HEADER = "X-ML-Connector-Secret"
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"

header_values = st.one_of(
    st.text(LATIN1, max_size=40),
    st.just("é" * 200),
    st.just("z" * 9000),
    st.sampled_from(["", " ", "0" * 64, "sha256=" + "a" * 64, "gzip", "deflate, br", "utf-16"]),
)
EVENT_KEYS = ["user", "created_at", "action", "resource", "parent", "change"]
asana_events = st.dictionaries(
    st.sampled_from(EVENT_KEYS),
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"gid": json_leaf, "resource_type": st.sampled_from(["task", "story", "project"]) | json_leaf}
        ),
        st.sampled_from(["changed", "added", "removed", "deleted", "undeleted"]),
        st.fixed_dictionaries({"field": json_leaf, "new_value": json_values, "added_value": json_values}),
    ),
    max_size=6,
)
asana_shaped = st.one_of(
    st.fixed_dictionaries({"events": st.lists(asana_events, max_size=3)}),
    st.fixed_dictionaries({"events": json_values}),
    st.lists(asana_events, max_size=2),
).map(lambda v: json.dumps(v).encode())
push_shaped = st.fixed_dictionaries(
    {
        "Query": json_values,
        "Id": json_values,
        "CompanyId": json_values,
        "Inserted": json_values | st.lists(st.dictionaries(st.text(max_size=10), json_leaf), max_size=3),
        "Deleted": json_values,
        "TimeStamp": json_values,
    }
).map(lambda v: json.dumps(v).encode())
deep = st.sampled_from([50, 900, 990, 1500, 20_000]).map(
    lambda n: b'{"events": ' + b"[" * n + b"]" * n + b"}"
)
encoded_text = st.tuples(st.text(max_size=80), st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1"])).map(
    lambda t: t[0].encode(t[1], errors="replace")
)
bodies = st.one_of(
    st.binary(max_size=256),
    st.binary(max_size=64).map(lambda b: b"\xff\xfe\xc3(" + b),
    encoded_text,
    json_values.map(lambda v: json.dumps(v).encode()),
    asana_shaped,
    push_shaped,
    deep,
    st.sampled_from([-1, 0, 1]).map(lambda d: b'{"events": [], "pad": "' + b"x" * (CAP - 26 + d) + b'"}'),
    st.just(b"\x1f\x8b\x08\x00" + b"\x00" * 40),  # a gzip header with nothing real behind it
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-16",
        "text/plain; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "",
        "garbage/\u00e9; charset=nonsense",
    ]
)
methods = st.sampled_from(
    ["POST", "POST", "POST", "POST", "POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
)
content_lengths = st.sampled_from([None, None, None, "abc", "-1", "0", str(10**12)])


def join_duplicate(values: list[str]) -> str:
    """What a WSGI server hands over for a header sent twice."""
    return ",".join(values)


@pytest.fixture
def endpoints(db, settings, monkeypatch):
    settings.WEBHOOK_MAX_BODY_BYTES = CAP
    tenant = Tenant.objects.create(slug="fuzz", name="Fuzz Builders")
    AsanaConnection.objects.create(
        tenant=tenant, personal_access_token="fuzz-pat-0123456789", workspace_gid="1200000000000001"
    )
    acumatica = AcumaticaConnection.objects.create(
        tenant=tenant,
        instance_url="https://erp.fuzz.test",
        client_id="id@Fuzz",
        push_secret=PUSH_SECRET,
        push_header_name=PUSH_HEADER,
    )
    active = AsanaWebhook.objects.create(
        tenant=tenant,
        resource_gid="1200000000000100",
        webhook_gid="1300000000000001",
        secret=ASANA_SECRET,
        state=AsanaWebhook.State.ACTIVE,
    )
    gone = AsanaWebhook.objects.create(
        tenant=tenant, resource_gid="1200000000000101", state=AsanaWebhook.State.GONE
    )
    queued: list[tuple] = []
    import django_q.tasks

    monkeypatch.setattr(django_q.tasks, "async_task", lambda *a, **k: queued.append((a, k)))
    return {"tenant": tenant, "acumatica": acumatica, "active": active, "gone": gone, "queued": queued}


def hook_state() -> list[tuple]:
    return list(
        AsanaWebhook.objects.order_by("pk").values_list(
            "pk", "secret", "state", "pending_since", "last_event_at", "last_heartbeat_at", "target_uuid"
        )
    )


def push_state() -> list[tuple]:
    return list(AcumaticaConnection.objects.order_by("pk").values_list("pk", "push_secret", "push_uuid"))


def send(client, method: str, path: str, body: bytes, content_type: str, headers: dict, length):
    extra: dict[str, Any] = {}
    if length is not None:
        extra["CONTENT_LENGTH"] = length
    return client.generic(method, path, data=body, content_type=content_type, headers=headers, **extra)


def assert_nothing_happened(before_max_pk: int, queued: list, state_before, state_now) -> None:
    new = InboundEvent.objects.filter(pk__gt=before_max_pk)
    assert set(new.values_list("status", flat=True)) <= {InboundEvent.Status.REJECTED}
    assert not new.exclude(signature__in=["missing", "invalid", "n/a"]).exists()
    assert queued == []
    assert state_now == state_before


def max_event_pk() -> int:
    last = InboundEvent.objects.order_by("-pk").first()
    return last.pk if last else 0


# ---- Asana --------------------------------------------------------------------------------------------


def asana_headers(draw_sig: str, body: bytes, extra: dict[str, str]) -> dict[str, str]:
    headers = dict(extra)
    valid = asana_webhooks.sign(ASANA_SECRET, body)
    if draw_sig == "other-secret":
        headers["X-Hook-Signature"] = asana_webhooks.sign("attacker-secret-0123456789", body)
    elif draw_sig == "duplicated":
        headers["X-Hook-Signature"] = join_duplicate([valid, "0" * 64])
    elif draw_sig == "truncated":
        headers["X-Hook-Signature"] = valid[:-1]
    elif draw_sig == "other-body":
        headers["X-Hook-Signature"] = asana_webhooks.sign(ASANA_SECRET, body + b" ")
    return headers


@FUZZ
@given(
    method=methods,
    target=st.sampled_from(["active", "active", "gone", "unknown", "malformed"]),
    malformed=st.text(LATIN1, min_size=1, max_size=40),
    body=bodies,
    content_type=content_types,
    signature=st.sampled_from(["absent", "other-secret", "duplicated", "truncated", "other-body", "forged"]),
    extra=st.dictionaries(
        st.sampled_from(["X-Hook-Signature", "X-Hook-Secret", "Content-Encoding", "X-Forwarded-For"]),
        header_values,
        max_size=3,
    ),
    length=content_lengths,
)
def test_asana_hook_without_a_valid_signature_is_4xx_and_has_no_effect(
    client, endpoints, method, target, malformed, body, content_type, signature, extra, length
):
    path = {
        "active": f"/hooks/asana/{endpoints['active'].target_uuid}/",
        "gone": f"/hooks/asana/{endpoints['gone'].target_uuid}/",
        "unknown": f"/hooks/asana/{UNKNOWN_UUID}/",
        "malformed": "/hooks/asana/" + malformed.replace("/", "") + "/",
    }[target]
    if signature != "forged":
        extra = {k: v for k, v in extra.items() if k != "X-Hook-Signature"}
    headers = asana_headers(signature, body, extra)
    before, state = max_event_pk(), hook_state()
    response = send(client, method, path, body, content_type, headers, length)
    event(f"{target}: {response.status_code}")
    assert 400 <= response.status_code < 500, response.content[:300]
    assert "X-Hook-Secret" not in response.headers
    assert_nothing_happened(before, endpoints["queued"], state, hook_state())


@FUZZ
@given(
    body=bodies,
    content_type=content_types,
    extra=st.dictionaries(st.sampled_from(["Content-Encoding", "X-Hook-Secret"]), header_values, max_size=2),
)
@example(
    body=b'{"events": [{"resource": "c", "change": [], "user": 1, "action": []}]}', content_type="", extra={}
)
def test_asana_hook_with_a_valid_signature_over_malformed_bodies_never_5xx(
    client, endpoints, body, content_type, extra
):
    extra.pop("X-Hook-Secret", None)  # a handshake is a different request (refused: not pending)
    headers = {**extra, "X-Hook-Signature": asana_webhooks.sign(ASANA_SECRET, body)}
    path = f"/hooks/asana/{endpoints['active'].target_uuid}/"
    response = send(client, "POST", path, body, content_type, headers, None)
    event(f"{response.status_code}")
    assert response.status_code < 500, response.content[:300]
    assert response.status_code in (200, 400, 413)
    hook = AsanaWebhook.objects.get(pk=endpoints["active"].pk)
    assert (hook.secret, hook.state) == (ASANA_SECRET, AsanaWebhook.State.ACTIVE)


# ---- Acumatica push -----------------------------------------------------------------------------------


@FUZZ
@given(
    method=methods,
    target=st.sampled_from(["known", "known", "unknown", "malformed"]),
    malformed=st.text(LATIN1, min_size=1, max_size=40),
    body=bodies,
    content_type=content_types,
    secret=st.one_of(
        st.none(),
        header_values,
        st.sampled_from(
            [
                PUSH_SECRET[:-1],
                PUSH_SECRET + " ",
                PUSH_SECRET.upper(),
                join_duplicate([PUSH_SECRET, PUSH_SECRET]),
                join_duplicate([PUSH_SECRET, "x"]),
                PUSH_SECRET + "é",
            ]
        ),
    ),
    secret_header=st.sampled_from([PUSH_HEADER, "X-Ml-Connector-Secret-2", "Authorization", "X-Secret"]),
    length=content_lengths,
)
def test_acumatica_push_without_the_shared_secret_is_4xx_and_has_no_effect(
    client, endpoints, method, target, malformed, body, content_type, secret, secret_header, length
):
    push_uuid = endpoints["acumatica"].push_uuid
    path = {
        "known": f"/hooks/acumatica/{push_uuid}/",
        "unknown": f"/hooks/acumatica/{uuid.UUID(UNKNOWN_UUID)}/",
        "malformed": "/hooks/acumatica/" + malformed.replace("/", "") + "/",
    }[target]
    headers = {} if secret is None else {secret_header: secret}
    if secret_header == PUSH_HEADER and secret == PUSH_SECRET:
        headers = {}
    before, state = max_event_pk(), push_state()
    response = send(client, method, path, body, content_type, headers, length)
    event(f"{target}: {response.status_code}")
    assert 400 <= response.status_code < 500, response.content[:300]
    assert_nothing_happened(before, endpoints["queued"], state, push_state())


@FUZZ
@given(body=bodies, content_type=content_types, encoding=st.sampled_from([None, "gzip", "br", "é"]))
@example(
    body=b'{"Query": {"a": []}, "Id": [1], "Inserted": 5, "Deleted": "x"}', content_type="", encoding=None
)
def test_acumatica_push_with_the_secret_over_malformed_bodies_never_5xx(
    client, endpoints, body, content_type, encoding
):
    headers = {PUSH_HEADER: PUSH_SECRET}
    if encoding:
        headers["Content-Encoding"] = encoding
    path = f"/hooks/acumatica/{endpoints['acumatica'].push_uuid}/"
    response = send(client, "POST", path, body, content_type, headers, None)
    event(f"{response.status_code}")
    assert response.status_code in (200, 400, 413), response.content[:300]


@pytest.mark.parametrize("system", ["asana", "acumatica"])
def test_signed_json_nested_past_the_parser_limit_is_400_not_500(client, endpoints, settings, system):
    """Outside hypothesis (which raises the recursion limit while it runs): the stock limit applies."""
    settings.WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
    body = b"[" * 200_000 + b"]" * 200_000
    if system == "asana":
        path = f"/hooks/asana/{endpoints['active'].target_uuid}/"
        headers = {"X-Hook-Signature": asana_webhooks.sign(ASANA_SECRET, body)}
    else:
        path = f"/hooks/acumatica/{endpoints['acumatica'].push_uuid}/"
        headers = {PUSH_HEADER: PUSH_SECRET}
    response = send(client, "POST", path, body, "application/json", headers, None)
    assert response.status_code == 400
    row = InboundEvent.objects.get()
    assert (row.status, row.signature) == (InboundEvent.Status.REJECTED, InboundEvent.Verdict.VALID)
    assert endpoints["queued"] == []


def test_the_valid_paths_do_have_effects(client, endpoints):
    """The fuzzed properties are meaningful: a signed event and an authenticated push are queued."""
    body = json.dumps(
        {
            "events": [
                {
                    "action": "changed",
                    "resource": {"gid": "1300000000000900", "resource_type": "task"},
                    "created_at": "2026-05-01T10:00:00.000Z",
                    "user": {"gid": "1200000000000009"},
                    "change": {"field": "completed"},
                }
            ]
        }
    ).encode()
    path = f"/hooks/asana/{endpoints['active'].target_uuid}/"
    headers = {"X-Hook-Signature": asana_webhooks.sign(ASANA_SECRET, body)}
    assert send(client, "POST", path, body, "application/json", headers, None).status_code == 200
    push = json.dumps({"Query": "ML-Bills", "Id": "1", "Inserted": []}).encode()
    path = f"/hooks/acumatica/{endpoints['acumatica'].push_uuid}/"
    assert (
        send(client, "POST", path, push, "application/json", {PUSH_HEADER: PUSH_SECRET}, None).status_code
        == 200
    )
    assert InboundEvent.objects.filter(status=InboundEvent.Status.QUEUED).count() == 2
    assert len(endpoints["queued"]) == 2
