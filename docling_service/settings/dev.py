"""Settings for a developer's machine and the first `make run`."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = SECRET_KEY or "dev-only-insecure-secret-key"  # noqa: F405
API_KEY_HASH_SECRET = API_KEY_HASH_SECRET or SECRET_KEY  # noqa: F405
