"""HTTPS: a real TLS handshake against a locally started agent with a self-signed certificate."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from sage100_agent.config import ConfigError, from_dict
from sage100_agent.ledger import Ledger
from sage100_agent.server import create_app, start_in_thread
from tests.tls_support import make_cert

from .conftest import call, po_body


@pytest.fixture
def cert_files(tmp_path):
    cert = make_cert(tmp_path)
    return cert.cert_path, cert.key_path


@pytest.fixture
def tls_agent(config, sim, cert_files):
    app = create_app(config, backend=sim, ledger=Ledger(config.ledger_path))
    running = start_in_thread(app, port=0, tls_cert=cert_files[0], tls_key=cert_files[1])
    yield running
    running.stop()


def test_https_request_with_verified_self_signed_cert(tls_agent, cert_files, sim):
    assert tls_agent.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=cert_files[0])  # verify chain and host name (SAN 127.0.0.1)
    reply = call(tls_agent, "GET", "/v1/ping", ssl_context=context)
    assert reply.status == 200 and reply.json["company"] == "ABC"
    created = call(tls_agent, "POST", "/v1/purchase-orders", po_body(), idem="tls-1", ssl_context=context)
    assert created.status == 201 and sim.count_pos() == 1


def test_untrusting_client_fails_the_handshake(tls_agent):
    with pytest.raises(ssl.SSLCertVerificationError):
        call(tls_agent, "GET", "/v1/ping", ssl_context=ssl.create_default_context())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_old_tls_versions_are_refused(tls_agent):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        context.minimum_version = ssl.TLSVersion.TLSv1
    except ValueError:
        pytest.skip("this OpenSSL cannot offer TLS 1.1 at all")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        call(tls_agent, "GET", "/v1/ping", ssl_context=context)


def test_plain_http_is_refused_off_loopback(tmp_path):
    data = {
        "agent": {"ledger_path": str(tmp_path / "l")},
        "server": {"host": "0.0.0.0", "allow_plain_http": True},
        "auth": {"clients": [{"api_key": "k" * 20, "hmac_secret": "s" * 40}]},
    }
    with pytest.raises(ConfigError, match="tls_cert"):
        from_dict(data, env={})


def test_example_config_parses_and_secrets_come_from_env(tmp_path):
    import sage100_agent as agent_pkg
    from sage100_agent.config import load_config

    example = Path(agent_pkg.__file__).with_name("agent.example.toml")
    env = {
        "SAGE_AGENT_API_KEY": "a" * 24,
        "SAGE_AGENT_HMAC_SECRET": "b" * 40,
        "SAGE_AGENT_ADMIN_KEY": "c" * 24,
        "SAGE_AGENT_ADMIN_SECRET": "d" * 40,
        "SAGE100_USER": "agent",
        "SAGE100_PASSWORD": "pw",
    }
    config = load_config(example, env=env)
    assert (config.backend, config.boi.user, config.clients[0].api_key) == ("boi", "agent", "a" * 24)
    assert [c.scopes for c in config.clients] == [("read", "po:create", "selftest"), ("admin",)]
    with pytest.raises(ConfigError, match="SAGE100_PASSWORD"):
        load_config(example, env={k: v for k, v in env.items() if k != "SAGE100_PASSWORD"})


def test_cli_check_runs_without_django(tmp_path, cert_files):
    toml = tmp_path / "agent.toml"
    toml.write_text(f"""
[agent]
backend = "simulated"
[server]
tls_cert = "{cert_files[0]}"
tls_key = "{cert_files[1]}"
[[auth.clients]]
api_key_env = "K"
hmac_secret_env = "S"
""")
    script = (
        "import runpy, sys\n"
        "sys.argv = ['agent', '--config', sys.argv[1], '--check']\n"
        "try:\n"
        "    runpy.run_module('sage100_agent', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "assert 'django' not in sys.modules, 'the agent imported django'\n"
    )
    repo_root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script, str(toml)],
        capture_output=True,
        text=True,
        env={"K": "k" * 20, "S": "s" * 40},
        cwd=repo_root,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK: backend=simulated" in result.stdout
