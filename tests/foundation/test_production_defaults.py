"""With DEBUG off the defaults are production's: loopback http refused, secure cookies, HSTS, the proxy
SSL header, and `manage.py check --deploy` reports nothing. Each is configurable (README, Production)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

ROOT = Path(__file__).resolve().parents[2]
CLEARED = (
    "DJANGO_ALLOW_ASYNC_UNSAFE",  # the browser suite sets it in this process; a deployment never does
    "DEBUG",
    "SECRET_KEY",
    "FERNET_KEYS",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOW_LOOPBACK_HTTP",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_PRELOAD",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
)
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "p9Xv2-kq_Zr4u8WcT1m0-LbN6yHs3Jd7Fg5Qe2Ai9OoRt-VwUx4Ck8Mn1Pz",
    "FERNET_KEYS": "prod-key-one",
    "ALLOWED_HOSTS": "connector.example.com",
}


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    base.update({"DJANGO_SETTINGS_MODULE": "connector_site.settings", "ML_CONNECTOR_ENV_FILE": "", **env})
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def settings_of(env: dict) -> dict:
    code = (
        "import json, django; from django.conf import settings as s; "
        "print(json.dumps({k: getattr(s, k) for k in "
        "('ALLOW_LOOPBACK_HTTP', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_SSL_REDIRECT', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_PROXY_SSL_HEADER')}))"
    )
    result = run(["-c", code], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_defaults_are_on_without_debug():
    got = settings_of(PRODUCTION)
    assert got == {
        "ALLOW_LOOPBACK_HTTP": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }


def test_each_is_configurable_and_debug_keeps_local_defaults():
    got = settings_of(
        {
            **PRODUCTION,
            "ALLOW_LOOPBACK_HTTP": "true",
            "SECURE_HSTS_SECONDS": "60",
            "SECURE_PROXY_SSL_HEADER": "",
        }
    )
    assert got["ALLOW_LOOPBACK_HTTP"] is True and got["SECURE_HSTS_SECONDS"] == 60
    assert got["SECURE_PROXY_SSL_HEADER"] is None
    local = settings_of({"DEBUG": "true"})
    assert local["ALLOW_LOOPBACK_HTTP"] is True and local["SESSION_COOKIE_SECURE"] is False
    assert local["SECURE_HSTS_SECONDS"] == 0 and local["SECURE_SSL_REDIRECT"] is False


def test_a_malformed_proxy_header_is_refused_with_its_form():
    result = run(
        ["-c", "import django; from django.conf import settings; settings.DEBUG"],
        {**PRODUCTION, "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"},
    )
    assert result.returncode != 0 and "HEADER,value" in result.stderr


def test_check_deploy_is_clean_with_production_settings():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_dotenv_of_make_run_allows_the_sandboxes_explicitly():
    result = run(["-m", "integrations.cli.dotenv"], {})
    assert "ALLOW_LOOPBACK_HTTP=true" in result.stdout.splitlines()
    assert "DEBUG=true" in result.stdout.splitlines()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8443", "http://localhost:9000/entity"])
def test_loopback_http_vendor_urls_are_refused_when_not_allowed(settings, url):
    from integrations.validators import validate_outbound_url

    settings.ALLOW_LOOPBACK_HTTP = False
    with pytest.raises(ValidationError, match="ALLOW_LOOPBACK_HTTP"):
        validate_outbound_url(url)
    settings.ALLOW_LOOPBACK_HTTP = True
    validate_outbound_url(url)


def test_plain_http_to_a_public_host_is_refused_even_when_loopback_is_allowed(settings):
    from integrations.validators import validate_outbound_url

    settings.ALLOW_LOOPBACK_HTTP = True
    with pytest.raises(ValidationError):
        validate_outbound_url("http://erp.example.com")
