"""ml-connector settings, read from the environment (django-environ).

Every variable is documented in `.env.example` and the README's configuration table.
The embedded default needs nothing installed: a SQLite file under var/ and django-q2's ORM broker.
`DATABASE_URL` switches to PostgreSQL; `REDIS_URL` switches django-q2 to its Redis broker.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    ALLOWED_HOSTS=(list, ["localhost", "127.0.0.1", "[::1]", "testserver"]),
    FERNET_KEYS=(list, []),
)
# ML_CONNECTOR_ENV_FILE names another file; set it empty to read none (the environment alone).
env_file = os.environ.get("ML_CONNECTOR_ENV_FILE", str(BASE_DIR / ".env"))
if env_file and Path(env_file).exists():
    environ.Env.read_env(env_file)

VAR_DIR = Path(env.str("ML_CONNECTOR_VAR_DIR", default="") or BASE_DIR / "var")
VAR_DIR.mkdir(parents=True, exist_ok=True)  # the SQLite file, rate budgets and sandbox state live here

DEBUG = env("DEBUG")

# Development-only fallbacks: refused outside DEBUG so a production install cannot run on them.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-ml-connector"  # noqa: S105
_DEV_FERNET_KEY = "ZGV2LW9ubHktaW5zZWN1cmUtZmVybmV0LWtleS0wMDA="  # noqa: S105

SECRET_KEY = env.str("SECRET_KEY", default="")
FERNET_KEYS = [k for k in env("FERNET_KEYS") if k]
_missing = [name for name, value in (("SECRET_KEY", SECRET_KEY), ("FERNET_KEYS", FERNET_KEYS)) if not value]
if _missing:
    if not DEBUG:
        raise ImproperlyConfigured(
            "ml-connector refuses to start without "
            + " and ".join(_missing)
            + ". Set SECRET_KEY to a long random string and FERNET_KEYS to a comma-separated list of "
            "Fernet keys (first encrypts, all decrypt); generate one with: python -c "
            '"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())". '
            "For local development only, DEBUG=true allows built-in insecure defaults."
        )
    SECRET_KEY = SECRET_KEY or _DEV_SECRET_KEY
    FERNET_KEYS = FERNET_KEYS or [_DEV_FERNET_KEY]
# django-fernet-fields reads FERNET_KEYS (first key encrypts, every key decrypts). With HKDF on (the
# default) a key may be any high-entropy string; off, each must be a raw Fernet key.
FERNET_USE_HKDF = env.bool("FERNET_USE_HKDF", default=True)

ALLOWED_HOSTS = env("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL Asana and Acumatica deliver webhooks to (no trailing slash).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
# The playground (sandbox/playground/): pages acting on the SIMULATED systems `make run` serves, for the
# tenant named here. Off by default — its URLs then do not exist; `make run` turns it on.
SANDBOX_PLAYGROUND = env.bool("SANDBOX_PLAYGROUND", default=False)
SANDBOX_PLAYGROUND_TENANT = env.str("SANDBOX_PLAYGROUND_TENANT", default="demo")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # before django_q: its `qcluster` command is ours (integrations/management/commands/qcluster.py)
    "integrations",
    "django_q",
    "mappings",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "connector_site.urls"
WSGI_APPLICATION = "connector_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ml-connector.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, qcluster) share the file: wait for locks instead of failing at once,
    # and take the write lock at BEGIN so two writers never deadlock on an upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    # Each web or worker process keeps its connection for a minute instead of opening one per request
    # (about 7 ms and a new server process each on PostgreSQL; it halved the webhook burst's throughput,
    # docs/PERFORMANCE.md). Health checks drop a connection the server closed. `?conn_max_age=0` on
    # DATABASE_URL restores one connection per request.
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# The webhook receive path's one INSERT is a prepared statement on PostgreSQL (prepared once per
# connection). Set false behind a pooler in transaction mode that does not track prepared statements
# (PgBouncer before 1.21), where the next delivery may run on another server connection.
INGEST_PREPARED_INSERT = env.bool("INGEST_PREPARED_INSERT", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="ml-connector"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "max_attempts": 1,  # our tasks reschedule themselves with backoff; the broker never blind-retries
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Task queue (django-q2)",
    "sync": env.bool("Q_SYNC", default=False),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # One Redis connection pool per process instead of one per enqueued task (connector_site/broker.py).
    Q_CLUSTER["broker_class"] = "connector_site.broker.PooledRedisBroker"
else:
    Q_CLUSTER["orm"] = "default"

CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "ml_connector_cache"}
    )
}

# Tenant memberships grant the console's model permissions (integrations/console/permissions.py).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "integrations.console.permissions.MembershipBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ml-connector@localhost")
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
# Optional: also open alerts as tasks in this Asana project (the tenant's Asana connection writes them).
ALERT_ASANA_PROJECT_GID = env.str("ALERT_ASANA_PROJECT_GID", default="")

# Largest webhook / push body accepted; larger deliveries get 413 and are not stored.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1_048_576)
DATA_UPLOAD_MAX_MEMORY_SIZE = max(WEBHOOK_MAX_BODY_BYTES * 2, 2_621_440)
# Refused deliveries (unknown hook, bad secret/signature, oversize) are counted per source address;
# past this many in a minute the address gets 429 (integrations/base/refusals.py).
WEBHOOK_REFUSALS_PER_MINUTE = env.int("WEBHOOK_REFUSALS_PER_MINUTE", default=30)
# Audit retention in days per kind of row (audit/retention.py has the kinds and the defaults: effects,
# failures, runs and acted-on events 7 years; no-op entries and ignored events 1 year; API-call
# excerpts and inbound bodies 90 days). Override one with RETENTION_<KIND>_DAYS, e.g.
# RETENTION_API_CALLS_DAYS.
AUDIT_RETENTION_DAYS = {
    kind: days
    for kind in (
        "effects",
        "no_ops",
        "sync_runs",
        "api_calls",
        "inbound_bodies",
        "inbound_events",
        "inbound_noise",
        "alerts",
    )
    if (days := env.int(f"RETENTION_{kind.upper()}_DAYS", default=None)) is not None
}
# Behind a trusted reverse proxy: the header naming the client address (e.g. X-Forwarded-For).
WEBHOOK_CLIENT_IP_HEADER = env.str("WEBHOOK_CLIENT_IP_HEADER", default="")

# Outbound HTTP defaults (seconds). Acumatica may queue requests silently: its read timeout is generous.
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", default=10.0)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", default=60.0)
# A wait up to this long sleeps in the worker; a longer one reschedules the task.
HTTP_MAX_INLINE_WAIT = env.float("HTTP_MAX_INLINE_WAIT", default=5.0)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=4)
# The rate-budget waits of one request total at most this long when no attempt deadline is set
# (integrations/base/http.py); inside `attempt_deadline(...)` the deadline bounds them instead.
HTTP_MAX_BUDGET_WAIT = env.float("HTTP_MAX_BUDGET_WAIT", default=60.0)
# http:// is accepted for loopback URLs (the sandboxes) only, and only while this is on: on by default
# under DEBUG (a local install), off otherwise; `make run`'s .env and the test settings set it.
ALLOW_LOOPBACK_HTTP = env.bool("ALLOW_LOOPBACK_HTTP", default=DEBUG)

# Production transport security, each on by default outside DEBUG and configurable (README,
# "Production"). The console is expected behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load-balancer probes speak plain http to the container
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
# Preloading is a commitment made at hstspreload.org for the whole domain: off unless asked for.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# "HTTP_X_FORWARDED_PROTO,https" by default outside DEBUG; set it empty when no proxy sets the header
# (then a client could claim https by sending it).
_proxy_header = env.list(
    "SECURE_PROXY_SSL_HEADER", default=[] if DEBUG else ["HTTP_X_FORWARDED_PROTO", "https"]
)
if _proxy_header and len(_proxy_header) != 2:
    raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER is 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_header) or None
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]  # preload: opt-in, see above

# /healthz and the dashboard's Cluster panel (integrations/flows/operations/health.py): red past these
# (seconds).
HEALTH_QUEUE_MAX_AGE_SECONDS = env.int("HEALTH_QUEUE_MAX_AGE_SECONDS", default=600)
# A wedged cluster (workers killed, stopped or stuck while tasks wait) shows within two minutes: 90 s
# without a finished task, plus the monitor's probe interval (tests/scale/test_worker_kills.py).
HEALTH_WORKER_IDLE_SECONDS = env.int("HEALTH_WORKER_IDLE_SECONDS", default=90)
# A run still "running" this long after it started is abandoned by the sweep (2 × Q_TIMEOUT, ≥ 30 min).
RUN_DEADLINE_SECONDS = env.int("RUN_DEADLINE_SECONDS", default=max(2 * Q_CLUSTER["timeout"], 1800))

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "integrations.base.redaction.RedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        # The handler's level too: Django's own loggers (django.request: every 4xx/5xx answer) set
        # their own level and propagate here past the root's.
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
            "level": LOG_LEVEL,
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django_q": {"level": "WARNING"}},
}
