"""HTTPS to an agent with a self-signed certificate made at test time: trusted through the supplied CA
(the certificate itself), or through a pinned SHA-256 fingerprint; a wrong pin or no trust fails the
handshake before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from integrations.base import errors
from integrations.flows.checks import check_connection
from integrations.sage100.client import client_for, normalise_fingerprint

from .conftest import make_cert, make_connection, po_payload


def test_supplied_ca_verifies_chain_and_host(tenant, tls_agent, cert, sleeps):
    conn = make_connection(tenant, tls_agent.url, ca_certificate=cert.pem)
    client = client_for(conn, sleep=sleeps)
    assert client.ping()["company"] == "ABC"
    assert client.create_purchase_order(po_payload(), "tls-ca")["po_number"] == "0000100"
    bundle = Path(client.session.verify)
    assert (
        bundle.parent == Path(settings.VAR_DIR) / "sage100" and bundle.read_text().strip() == cert.pem.strip()
    )


def test_pinned_fingerprint_trusts_the_self_signed_cert(tenant, tls_agent, cert, sleeps):
    conn = make_connection(tenant, tls_agent.url, tls_fingerprint_sha256=cert.fingerprint)
    client = client_for(conn, sleep=sleeps)
    assert client.ping()["company"] == "ABC"
    assert client.session.verify is False  # the pin replaces the chain, not adds to nothing


def test_pin_and_ca_together(tenant, tls_agent, cert, sleeps):
    conn = make_connection(
        tenant, tls_agent.url, tls_fingerprint_sha256=cert.fingerprint, ca_certificate=cert.pem
    )
    assert client_for(conn, sleep=sleeps).ping()["company"] == "ABC"


def test_wrong_pin_fails(tenant, tls_agent, tmp_path, sleeps):
    other = make_cert(tmp_path, "other")
    conn = make_connection(tenant, tls_agent.url, tls_fingerprint_sha256=other.fingerprint)
    with pytest.raises(errors.ConnectorError) as caught:
        client_for(conn, sleep=sleeps, max_retries=0).ping()
    assert "Fingerprints did not match" in str(caught.value)
    assert tls_agent.backend.count_pos() == 0


def test_wrong_pin_on_create_sends_nothing(tenant, tls_agent, tmp_path, sleeps):
    other = make_cert(tmp_path, "other")
    conn = make_connection(tenant, tls_agent.url, tls_fingerprint_sha256=other.fingerprint)
    with pytest.raises(errors.ConnectorError):
        client_for(conn, sleep=sleeps, max_retries=0).create_purchase_order(po_payload(), "tls-x")
    assert tls_agent.backend.count_pos() == 0


def test_untrusted_self_signed_cert_fails_without_ca_or_pin(tenant, tls_agent, sleeps):
    conn = make_connection(tenant, tls_agent.url)
    with pytest.raises(errors.ConnectorError) as caught:
        client_for(conn, sleep=sleeps, max_retries=0).ping()
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)


def test_wrong_ca_fails(tenant, tls_agent, tmp_path, sleeps):
    other = make_cert(tmp_path, "other")
    conn = make_connection(tenant, tls_agent.url, ca_certificate=other.pem)
    with pytest.raises(errors.ConnectorError):
        client_for(conn, sleep=sleeps, max_retries=0).ping()


def test_fingerprint_formats():
    colon = ":".join(["AB"] * 32)
    assert normalise_fingerprint(colon) == "ab" * 32
    with pytest.raises(errors.ConfigurationError):
        normalise_fingerprint("AB:CD")


def test_connector_check_over_tls_reports_company_version_and_reads(tenant, tls_agent, cert):
    conn = make_connection(tenant, tls_agent.url, tls_fingerprint_sha256=cert.fingerprint)
    results = check_connection("sage100", conn)
    assert all(r.ok for r in results), results
    text = " | ".join(f"{r.what}: {r.detail}" for r in results)
    assert "company: ABC" in text and "vendors readable" in text and "GL accounts readable" in text
    conn.refresh_from_db()
    assert conn.agent_version


def test_connector_check_explains_a_wrong_pin(tenant, tls_agent, tmp_path):
    other = make_cert(tmp_path, "other")
    conn = make_connection(tenant, tls_agent.url, tls_fingerprint_sha256=other.fingerprint)
    results = check_connection("sage100", conn)
    assert not results[-1].ok and "TLS" in results[-1].detail
