"""Settings for the test suite: the real settings with test keys and django-q2 in sync mode.

DATABASE_URL and REDIS_URL still apply, so `.ci/run` runs the same suite on PostgreSQL and Redis.
"""

import os

# A developer's .env (written by `make run`) must not leak into the suite.
os.environ.setdefault("ML_CONNECTOR_ENV_FILE", "")

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-" + "x" * 20)
os.environ.setdefault("FERNET_KEYS", "test-fernet-key-one")
os.environ.setdefault("PUBLIC_BASE_URL", "http://testserver")
# The sandboxes answer on loopback http; the test client and the browser speak plain http.
os.environ.setdefault("ALLOW_LOOPBACK_HTTP", "true")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault(
    "ML_CONNECTOR_VAR_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test")
)

from .settings import *  # noqa: E402,F403
from .settings import Q_CLUSTER  # noqa: E402

Q_CLUSTER["sync"] = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
HTTP_MAX_INLINE_WAIT = 5.0
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
