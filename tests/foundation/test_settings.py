"""Settings come from the environment; production refuses to start without keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_settings(env: dict) -> subprocess.CompletedProcess:
    code = (
        "import json, django; from django.conf import settings; "
        "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'], "
        "'q': {k: settings.Q_CLUSTER.get(k) for k in ('orm', 'redis')}, 'keys': len(settings.FERNET_KEYS), "
        "'debug': settings.DEBUG}))"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "SECRET_KEY", "FERNET_KEYS", "DATABASE_URL", "REDIS_URL")
    }
    base.update({"DJANGO_SETTINGS_MODULE": "connector_site.settings", "ML_CONNECTOR_ENV_FILE": "", **env})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60
    )


def test_production_refuses_to_start_without_keys():
    result = load_settings({"DEBUG": "false"})
    assert result.returncode != 0
    assert "SECRET_KEY and FERNET_KEYS" in result.stderr
    assert "FERNET_KEYS to a comma-separated list" in result.stderr


def test_production_refuses_without_fernet_keys_only():
    result = load_settings({"DEBUG": "false", "SECRET_KEY": "s" * 50})
    assert result.returncode != 0
    assert "without FERNET_KEYS" in result.stderr


def test_embedded_default_is_sqlite_and_orm_broker():
    result = load_settings({"DEBUG": "false", "SECRET_KEY": "s" * 50, "FERNET_KEYS": "k1,k2"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["engine"] == "django.db.backends.sqlite3"
    assert data["q"] == {"orm": "default", "redis": None}
    assert data["keys"] == 2


def test_database_url_and_redis_url_switch_backends():
    result = load_settings(
        {
            "DEBUG": "false",
            "SECRET_KEY": "s" * 50,
            "FERNET_KEYS": "k1",
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/db",
            "REDIS_URL": "redis://127.0.0.1:6379/3",
        }
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["engine"] == "django.db.backends.postgresql"
    assert data["q"] == {"orm": None, "redis": "redis://127.0.0.1:6379/3"}


def test_debug_allows_development_defaults():
    result = load_settings({"DEBUG": "true"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["debug"] is True


def test_env_file_is_read(tmp_path):
    env_file = tmp_path / "custom.env"
    env_file.write_text("SECRET_KEY=" + "k" * 50 + "\nFERNET_KEYS=from-file-1,from-file-2\n")
    result = load_settings({"DEBUG": "false", "ML_CONNECTOR_ENV_FILE": str(env_file)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["keys"] == 2


def test_log_level_holds_for_djangos_own_loggers_too():
    """django.request logs every 4xx/5xx answer at WARNING/ERROR with a level of its own: LOG_LEVEL must
    still decide what reaches the console."""
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('django.request').error('request-error-line'); "
        "logging.getLogger('integrations').critical('critical-line')"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "LOG_LEVEL")}
    base.update(
        {
            "DJANGO_SETTINGS_MODULE": "connector_site.settings",
            "ML_CONNECTOR_ENV_FILE": "",
            "DEBUG": "false",  # (DEBUG adds Django's own console handler for its loggers)
            "SECRET_KEY": "s" * 50,
            "FERNET_KEYS": "k1",
        }
    )
    for level, shown in (("CRITICAL", False), ("INFO", True)):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={**base, "LOG_LEVEL": level},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert ("request-error-line" in result.stderr) is shown
        assert "critical-line" in result.stderr
