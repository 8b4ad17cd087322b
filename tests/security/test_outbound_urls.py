"""Outbound URLs to private networks are refused for cloud services, unless loopback sandbox.

Three layers (integrations/validators.py, integrations/base/outbound.py): the URL when it is saved
(forms, `connector config apply`), the URL again at request time (it may have been written straight
into the database), and every address the host name resolves to, checked when the socket is opened
(`socket.getaddrinfo` is patched here: no DNS, no network). Redirects are never followed. The Sage 100
agent, on the customer's LAN, may be private.
"""

from __future__ import annotations

import json
import socket

import pytest
import responses
import urllib3.util.connection
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from audit.models import ApiCall
from integrations.acumatica.client import client_for as acumatica_client_for
from integrations.asana.client import client_for as asana_client_for
from integrations.base import errors
from integrations.base.outbound import OutboundAddressRefused
from integrations.models import AcumaticaConnection, AsanaConnection, Sage100Connection
from integrations.sage100.client import client_for as sage_client_for
from integrations.validators import validate_outbound_url

PUBLIC_IP = "93.184.216.34"


class FakeNetwork:
    """getaddrinfo answers from a table; connecting records the address and fails (no network)."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.connected: list[tuple[str, int]] = []

    def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        if host not in self.names:
            try:
                socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
                addresses = [host]
            except OSError:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        else:
            addresses = self.names[host]
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]

    def create_connection(self, address, *args, **kwargs):
        self.connected.append(address)
        raise ConnectionRefusedError("no network in tests")


@pytest.fixture
def network(monkeypatch):
    fake = FakeNetwork()
    monkeypatch.setattr(socket, "getaddrinfo", fake.getaddrinfo)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", fake.create_connection)
    return fake


@pytest.fixture
def connections(tenant):
    acumatica = AcumaticaConnection.objects.create(
        tenant=tenant, instance_url="https://acme.acumatica.com", client_id="id@Acme", password="pw-0123456"
    )
    asana = AsanaConnection.objects.create(
        tenant=tenant, workspace_gid="1200000000000001", personal_access_token="pat-0123456789"
    )
    return acumatica, asana


def asana_get(conn: AsanaConnection):
    return asana_client_for(conn, rate_limiter=None, max_retries=0).request("GET", "/users/me")


def acumatica_get(conn: AcumaticaConnection):
    client = acumatica_client_for(conn, rate_limiter=None, max_retries=0)
    return client.request("GET", "Bill", authenticated=False)


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud metadata
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.10",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "::ffff:10.0.0.1",  # IPv4-mapped IPv6
        "::ffff:169.254.169.254",
        "fd00::1",
        "fe80::1",
    ],
)
@pytest.mark.parametrize("system", ["acumatica", "asana"])
def test_a_host_that_resolves_to_a_private_address_is_refused_before_connecting(
    connections, network, address, system
):
    acumatica, asana = connections
    network.names["erp.example-cloud.com"] = [address]
    if system == "acumatica":
        AcumaticaConnection.objects.filter(pk=acumatica.pk).update(
            instance_url="https://erp.example-cloud.com"
        )
        acumatica.refresh_from_db()
        call = lambda: acumatica_get(acumatica)  # noqa: E731
    else:
        AsanaConnection.objects.filter(pk=asana.pk).update(
            api_base_url="https://erp.example-cloud.com/api/1.0"
        )
        asana.refresh_from_db()
        call = lambda: asana_get(asana)  # noqa: E731
    with pytest.raises(OutboundAddressRefused, match="resolves to"):
        call()
    assert network.connected == []
    refused = ApiCall.objects.get()
    assert refused.status_code is None and "resolves to" in refused.error


def test_one_private_address_among_public_ones_is_enough_to_refuse(connections, network):
    _, asana = connections
    network.names["app.asana.com"] = [PUBLIC_IP, "10.0.0.7"]
    with pytest.raises(OutboundAddressRefused):
        asana_get(asana)
    assert network.connected == []


def test_a_public_address_is_connected_to_as_checked(connections, network):
    """The control: a public answer passes, and the socket goes to the checked address (no second
    lookup that a rebinding DNS could answer differently)."""
    _, asana = connections
    network.names["app.asana.com"] = [PUBLIC_IP]
    with pytest.raises(errors.Unavailable):
        asana_get(asana)
    assert network.connected == [(PUBLIC_IP, 443)]


@pytest.mark.parametrize("allow_loopback", [True, False])
def test_loopback_is_for_the_sandboxes_only(connections, network, settings, allow_loopback):
    _, asana = connections
    settings.ALLOW_LOOPBACK_HTTP = allow_loopback
    network.names["sandbox.localtest.me"] = ["127.0.0.1"]
    AsanaConnection.objects.filter(pk=asana.pk).update(api_base_url="https://sandbox.localtest.me/api/1.0")
    asana.refresh_from_db()
    if allow_loopback:
        with pytest.raises(errors.Unavailable):
            asana_get(asana)
        assert network.connected == [("127.0.0.1", 443)]
    else:
        with pytest.raises(OutboundAddressRefused, match="loopback"):
            asana_get(asana)
        assert network.connected == []
    AsanaConnection.objects.filter(pk=asana.pk).update(api_base_url="http://127.0.0.1:8102/api/1.0")
    asana.refresh_from_db()
    if allow_loopback:
        with pytest.raises(errors.Unavailable):
            asana_get(asana)
    else:
        with pytest.raises(OutboundAddressRefused, match="ALLOW_LOOPBACK_HTTP"):
            asana_get(asana)


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/AcumaticaERP",
        "https://[::ffff:a00:5]/AcumaticaERP",  # ::ffff:10.0.0.5
        "https://[fd00::5]/",
        "https://2130706433/",  # 127.0.0.1 in decimal
        "https://0x7f.1/",
        "https://017700000001/",
        "https://0.0.0.0/",
        "http://erp.acme.com/",  # plain http to a non-loopback host
        "http://2130706433/",
    ],
)
def test_urls_written_straight_into_the_database_are_refused_at_request_time(connections, network, url):
    acumatica, _ = connections
    with pytest.raises(ValidationError):
        validate_outbound_url(url)  # what the console and config apply say
    AcumaticaConnection.objects.filter(pk=acumatica.pk).update(instance_url=url)  # bypassing them
    acumatica.refresh_from_db()
    with pytest.raises(OutboundAddressRefused):
        acumatica_get(acumatica)
    assert network.connected == []


@pytest.mark.parametrize(
    "url", ["https://169.254.169.254/", "https://[::ffff:192.168.0.1]/", "https://2130706433/"]
)
def test_config_apply_refuses_private_targets_and_writes_nothing(tmp_path, db, capsys, url):
    doc = {
        "tenant": {"slug": "acme", "name": "Acme"},
        "acumatica": {"instance_url": url, "client_id": "id@Acme", "username": "api"},
    }
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(CommandError):
        call_command("connector", "config", "apply", str(path))
    err = capsys.readouterr().err
    assert "acumatica.instance_url" in err and ("private" in err or "shorthand" in err), err
    assert not AcumaticaConnection.objects.exists()


def test_a_redirect_is_never_followed(connections):
    _, asana = connections
    with responses.RequestsMock() as rsps:
        rsps.get(
            "https://app.asana.com/api/1.0/users/me",
            status=302,
            headers={"Location": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
        )
        with pytest.raises(errors.ConnectorError):
            asana_get(asana)
        assert [c.request.url for c in rsps.calls] == ["https://app.asana.com/api/1.0/users/me"]


def test_the_sage_agent_on_the_customers_lan_may_be_private(tenant, network):
    conn = Sage100Connection.objects.create(
        tenant=tenant,
        agent_url="https://sage-server.corp.lan:8443",
        api_key="sage-api-key-0123456789",
        signing_secret="sage-signing-secret-0123456789",
        company_code="ABC",
    )
    conn.full_clean()
    network.names["sage-server.corp.lan"] = ["10.20.30.40"]
    client = sage_client_for(conn, max_retries=0, sleep=lambda s: None)
    with pytest.raises(errors.ConnectorError) as caught:
        client.ping()
    assert not isinstance(caught.value, OutboundAddressRefused)
    assert network.connected == [("sage-server.corp.lan", 8443)]  # no guard: connected as named
