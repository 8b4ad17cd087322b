"""Signing: the connector and the agent compute the same canonical string; every failure is refused."""

from __future__ import annotations

import time

import pytest

from sage100_agent.signing import (
    SignatureError,
    canonical_string,
    compute_signature,
    sign_request,
    verify_request,
)

KEYS = {
    "key-a-0123456789abcdef": "secret-a-0123456789abcdef0123456789",
    "key-b-0123456789abcdef": "secret-b-xyz",
}
PATH = "/v1/purchase-orders?dry_run=true"
BODY = b'{"external_id":"1"}'


def test_good_signature_verifies_and_names_the_key():
    headers = sign_request("key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "post", PATH, None, BODY)
    assert headers["Authorization"] == "Bearer key-a-0123456789abcdef"
    assert headers["X-Signature"].startswith("v2=") and len(headers["X-Nonce"]) >= 16
    assert verify_request(KEYS, "POST", PATH, headers, BODY) == "key-a-0123456789abcdef"


def test_canonical_string_is_documented_format():
    assert (
        canonical_string("get", "/v1/ping?a=1", 1700000000, "n" * 16, "ab", "asana:1:v1")
        == b"v2\nGET\n/v1/ping?a=1\n1700000000\nnnnnnnnnnnnnnnnn\nab\nasana:1:v1"
    )
    # Known-answer test so a client in another language can check itself against this value.
    sig = compute_signature("s", "GET", "/v1/ping", 1700000000, b"", "0123456789abcdef")
    assert (
        sig
        == "v2="
        + __import__("hmac")
        .new(
            b"s",
            b"v2\nGET\n/v1/ping\n1700000000\n0123456789abcdef\n"
            b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
            "sha256",
        )
        .hexdigest()
    )


def test_a_nonce_is_accepted_once():
    seen: set[tuple[str, str]] = set()

    def remember(key, nonce, ts):
        if (key, nonce) in seen:
            return False
        seen.add((key, nonce))
        return True

    headers = sign_request("key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "GET", "/v1/ping")
    assert verify_request(KEYS, "GET", "/v1/ping", headers, b"", remember_nonce=remember)
    with pytest.raises(SignatureError) as exc:
        verify_request(KEYS, "GET", "/v1/ping", headers, b"", remember_nonce=remember)
    assert exc.value.reason == "replay"
    # A forged request (wrong signature) never reaches the store, so it cannot fill it.
    forged = {**headers, "X-Nonce": "f" * 20, "X-Signature": "v2=" + "0" * 64}
    with pytest.raises(SignatureError, match="mismatch"):
        verify_request(KEYS, "GET", "/v1/ping", forged, b"", remember_nonce=remember)
    assert len(seen) == 1


def test_the_idempotency_key_is_signed():
    headers = sign_request(
        "key-a-0123456789abcdef",
        KEYS["key-a-0123456789abcdef"],
        "POST",
        PATH,
        None,
        BODY,
        idempotency_key="k1",
    )
    assert headers["Idempotency-Key"] == "k1"
    assert verify_request(KEYS, "POST", PATH, headers, BODY)
    for changed in ({"Idempotency-Key": "k2"}, {"Idempotency-Key": ""}):
        with pytest.raises(SignatureError, match="mismatch"):
            verify_request(KEYS, "POST", PATH, {**headers, **changed}, BODY)
    without = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
    with pytest.raises(SignatureError, match="mismatch"):
        verify_request(KEYS, "POST", PATH, without, BODY)


@pytest.mark.parametrize("nonce", ["", "short", "x" * 129, "has space in it 0123", "é" * 20])
def test_a_missing_or_malformed_nonce_is_refused(nonce):
    headers = sign_request("key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "GET", "/v1/ping")
    headers["X-Nonce"] = nonce
    with pytest.raises(SignatureError) as exc:
        verify_request(KEYS, "GET", "/v1/ping", headers, b"")
    assert exc.value.reason == "nonce"


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.update({"X-Signature": "v1=" + "0" * 64}), "signature"),
        (lambda h: h.update({"Authorization": "Bearer nope"}), "unknown_key"),
        (lambda h: h.pop("X-Timestamp"), "missing"),
        (lambda h: h.pop("Authorization"), "missing"),
    ],
)
def test_bad_credentials_are_refused(mutate, reason):
    headers = sign_request(
        "key-b-0123456789abcdef", KEYS["key-b-0123456789abcdef"], "GET", "/v1/ping", None, b""
    )
    mutate(headers)
    with pytest.raises(SignatureError) as exc:
        verify_request(KEYS, "GET", "/v1/ping", headers, b"")
    assert exc.value.reason == reason


def test_wrong_secret_for_the_key_is_refused():
    headers = sign_request(
        "key-a-0123456789abcdef", KEYS["key-b-0123456789abcdef"], "GET", "/v1/ping", None, b""
    )
    with pytest.raises(SignatureError, match="mismatch"):
        verify_request(KEYS, "GET", "/v1/ping", headers, b"")


@pytest.mark.parametrize("offset", [-61, 61, 3600])
def test_skewed_timestamps_are_refused(offset):
    now = time.time()
    headers = sign_request(
        "key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "GET", "/v1/ping", int(now) + offset, b""
    )
    with pytest.raises(SignatureError) as exc:
        verify_request(KEYS, "GET", "/v1/ping", headers, b"", now=now)
    assert exc.value.reason == "skew"


def test_skew_inside_the_window_is_accepted():
    now = time.time()
    headers = sign_request(
        "key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "GET", "/v1/ping", int(now) - 55, b""
    )
    assert verify_request(KEYS, "GET", "/v1/ping", headers, b"", now=now)


def test_replayed_headers_with_a_tampered_body_are_refused():
    headers = sign_request("key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "POST", PATH, None, BODY)
    tampered = b'{"external_id":"2"}'
    with pytest.raises(SignatureError) as exc:
        verify_request(KEYS, "POST", PATH, headers, tampered)
    assert exc.value.reason == "body_hash"
    # Even when the attacker also recomputes the informative body hash, the HMAC does not match.
    headers["X-Content-SHA256"] = __import__("hashlib").sha256(tampered).hexdigest()
    with pytest.raises(SignatureError) as exc:
        verify_request(KEYS, "POST", PATH, headers, tampered)
    assert exc.value.reason == "signature"


def test_replayed_headers_on_another_path_or_method_are_refused():
    headers = sign_request("key-a-0123456789abcdef", KEYS["key-a-0123456789abcdef"], "POST", PATH, None, BODY)
    for method, path in (("POST", "/v1/purchase-orders"), ("PUT", PATH), ("POST", "/v1/admin/drain")):
        with pytest.raises(SignatureError):
            verify_request(KEYS, method, path, headers, BODY)
