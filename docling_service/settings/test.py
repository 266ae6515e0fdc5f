"""Settings for the test suite: PostgreSQL and a Redis database of its own."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = SECRET_KEY or "test-only-secret-key"  # noqa: F405
API_KEY_HASH_SECRET = API_KEY_HASH_SECRET or SECRET_KEY  # noqa: F405
DATABASES = {
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="")
        or "postgres://postgres@127.0.0.1:5432/docling_service"
    ),
}
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or "redis://127.0.0.1:6379/15"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("CACHE_URL", default="") or "redis://127.0.0.1:6379/14",
        "KEY_PREFIX": "docling-service-test",
    },
}
# No rate limits unless a test sets them: tests poll jobs quickly.
RATE_LIMITS = {"burst": "", "sustained": "", "upload_burst": "", "upload_sustained": ""}
