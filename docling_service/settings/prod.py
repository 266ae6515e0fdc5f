"""Production settings: secrets required, official virus signatures only."""

from django.core.exceptions import ImproperlyConfigured

from scanning import signature_set

from .base import *  # noqa: F403
from .base import CLAMD_DATABASE_DIR, LOG_LEVEL, SECRET_KEY, build_logging, env

DEBUG = False
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set in production.")

ALLOW_TEST_SIGNATURES = env.bool("ALLOW_TEST_SIGNATURES", default=False)
if not ALLOW_TEST_SIGNATURES and signature_set(CLAMD_DATABASE_DIR) != "official":
    raise ImproperlyConfigured(
        f"clamd's database in {CLAMD_DATABASE_DIR} holds no official ClamAV "
        "signatures (test-only or none). Run freshclam before starting in "
        "production, or set ALLOW_TEST_SIGNATURES=true for a staging machine."
    )

SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# JSON lines for journald and log shippers; LOG_FORMAT=plain for text.
LOG_FORMAT = env.str("LOG_FORMAT", default="") or "json"
LOGGING = build_logging(LOG_FORMAT, LOG_LEVEL)
