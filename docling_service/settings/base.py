"""Settings shared by every environment.

Every value comes from the environment (or a `.env` file in the project
root); `.env.example` lists each variable with its default and unit. Bad
values raise at start-up, not on the first request.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def positive_int(name: str, default: int) -> int:
    """Read an integer setting and reject zero or negative values."""
    value = env.int(name, default=default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value}.")
    return value


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

DATA_ROOT = Path(env.str("DATA_ROOT", default=str(BASE_DIR / "var"))).resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "accounts",
    "documents",
    "dashboard",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    "core.middleware.JsonExceptionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "docling_service.urls"
WSGI_APPLICATION = "docling_service.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{DATA_ROOT / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The first-run SQLite database is shared by Gunicorn, the worker and its
    # heartbeat threads: WAL lets readers and one writer work together,
    # IMMEDIATE transactions take the write lock up front instead of failing
    # on an upgrade, and the timeout waits for the lock instead of raising
    # "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        **DATABASES["default"].get("OPTIONS", {}),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# Uploads stream through core.uploads.QuarantineUploadHandler straight into
# the quarantine folder; these bound only the non-file form fields.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
UPLOAD_MAX_SIZE_MB = positive_int("UPLOAD_MAX_SIZE_MB", 200)
UPLOAD_MAX_SIZE_BYTES = UPLOAD_MAX_SIZE_MB * 1024 * 1024
MAX_PAGES = positive_int("MAX_PAGES", 1000)

# Artifact downloads: "stream" (Django sends the file) or "x-accel" (Django
# authorizes, then Nginx sends the file from its internal location
# ARTIFACT_ACCEL_PREFIX + the artifact's path under DATA_ROOT; see
# deploy/nginx/docling-service.conf).
ARTIFACT_DELIVERY = env.str("ARTIFACT_DELIVERY", default="stream")
if ARTIFACT_DELIVERY not in ("stream", "x-accel"):
    raise ImproperlyConfigured(
        f"ARTIFACT_DELIVERY must be 'stream' or 'x-accel', got '{ARTIFACT_DELIVERY}'."
    )
ARTIFACT_ACCEL_PREFIX = env.str("ARTIFACT_ACCEL_PREFIX", default="/protected-artifacts/")
if not (ARTIFACT_ACCEL_PREFIX.startswith("/") and ARTIFACT_ACCEL_PREFIX.endswith("/")):
    raise ImproperlyConfigured(
        f"ARTIFACT_ACCEL_PREFIX must start and end with '/', got '{ARTIFACT_ACCEL_PREFIX}'."
    )

# Retention (documents.retention), run by Celery Beat every
# RETENTION_INTERVAL_MINUTES and by `manage.py prune_storage`. Uploads still
# in quarantine (never scanned, or PDF_ENCRYPTED) and infected uploads are
# deleted after their hours; artifacts after the tenant's
# artifact_retention_days, else ARTIFACT_RETENTION_DAYS. Files that no row
# points to are deleted once they are ORPHAN_GRACE_MINUTES old, which must
# exceed the longest upload.
QUARANTINE_RETENTION_HOURS = positive_int("QUARANTINE_RETENTION_HOURS", 72)
INFECTED_RETENTION_HOURS = positive_int("INFECTED_RETENTION_HOURS", 720)
ARTIFACT_RETENTION_DAYS = positive_int("ARTIFACT_RETENTION_DAYS", 30)
ORPHAN_GRACE_MINUTES = positive_int("ORPHAN_GRACE_MINUTES", 15)
RETENTION_INTERVAL_MINUTES = positive_int("RETENTION_INTERVAL_MINUTES", 60)

API_KEY_HASH_SECRET = env.str("API_KEY_HASH_SECRET", default="") or SECRET_KEY

# Redis is the Celery broker and result store.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = positive_int("CELERY_TASK_SOFT_TIME_LIMIT", 1800)
CELERY_TASK_TIME_LIMIT = positive_int("CELERY_TASK_TIME_LIMIT", 1900)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        "CELERY_TASK_TIME_LIMIT must be greater than CELERY_TASK_SOFT_TIME_LIMIT."
    )
# With acks_late, Redis redelivers an unacknowledged task after this many
# seconds, so it must exceed the hard time limit.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 300,
}
CELERY_WORKER_CONCURRENCY = positive_int("CELERY_WORKER_CONCURRENCY", 1)
CELERY_WORKER_MAX_TASKS_PER_CHILD = positive_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 200)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="docling")
# A new worker process loads Docling's models before it reports ready
# (DOCLING_WARM_UP), which takes several seconds on a busy machine; Celery's
# default of 4 s makes the parent kill it again and again.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = positive_int("CELERY_WORKER_PROC_ALIVE_TIMEOUT", 120)
# Memory a worker process may reach (KiB) before it is replaced after its
# current task; 0 turns the check off.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=4_000_000) or None
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# clamd: a unix socket (unix:///path) or tcp://127.0.0.1:3310.
CLAMD_ADDRESS = (
    env.str("CLAMD_ADDRESS", default="") or f"unix://{DATA_ROOT / 'clamav' / 'clamd.sock'}"
)
CLAMD_DATABASE_DIR = (
    env.str("CLAMD_DATABASE_DIR", default="") or str(DATA_ROOT / "clamav" / "db")
)
CLAMD_TIMEOUT_SECONDS = positive_int("CLAMD_TIMEOUT_SECONDS", 60)
SCAN_MAX_RETRIES = positive_int("SCAN_MAX_RETRIES", 5)
SCAN_RETRY_BACKOFF_SECONDS = positive_int("SCAN_RETRY_BACKOFF_SECONDS", 2)

# Docling. An empty DOCLING_ARTIFACTS_PATH means no stock models were
# downloaded, so the offline layout engine is used.
DOCLING_ARTIFACTS_PATH = env.str("DOCLING_ARTIFACTS_PATH", default="") or None
DOCLING_LAYOUT_ENGINE = env.str("DOCLING_LAYOUT_ENGINE", default="auto")
DOCLING_OCR_ENGINE = env.str("DOCLING_OCR_ENGINE", default="tesseract")
DOCLING_NUM_THREADS = positive_int("DOCLING_NUM_THREADS", 2)
DOCLING_TOKENIZER_PATH = env.str("DOCLING_TOKENIZER_PATH", default="") or None
DOCLING_WARM_UP = env.bool("DOCLING_WARM_UP", default=True)
TESSDATA_PREFIX = env.str(
    "TESSDATA_PREFIX", default="/usr/share/tesseract-ocr/5/tessdata"
)

JOB_MAX_RETRIES = env.int("JOB_MAX_RETRIES", default=3)
# Caps of one conversion, enforced in its own process: address space it may
# add to the warm process (MiB) and CPU seconds (all threads together). A
# conversion that breaks one fails with RESOURCE_LIMIT.
CONVERSION_MAX_MEMORY_MB = positive_int("CONVERSION_MAX_MEMORY_MB", 6144)
CONVERSION_MAX_CPU_SECONDS = positive_int("CONVERSION_MAX_CPU_SECONDS", 1500)
# Conversions of one job whose process crashed before the job fails with
# WORKER_CRASHED instead of being tried again.
CONVERSION_MAX_CRASHES = positive_int("CONVERSION_MAX_CRASHES", 2)
# Cheap checks before Docling opens a file.
MAX_PAGE_SIDE_INCHES = positive_int("MAX_PAGE_SIDE_INCHES", 100)
MAX_IMAGE_PIXELS = positive_int("MAX_IMAGE_PIXELS", 200_000_000)
# Server-wide defaults for conversion options, as a JSON object with the same
# keys a client sends, e.g. {"do_ocr": false, "chunking": {"strategy": "hierarchical"}}.
# The documents app checks it at start-up.
DOC_DEFAULT_OPTIONS = env.json("DOC_DEFAULT_OPTIONS", default={})
# Seconds between heartbeats of a running stage, and after which a job
# without one is treated as lost by the reaper (it must exceed the longest
# scan retry backoff, which is SCAN_RETRY_BACKOFF_SECONDS * 2**SCAN_MAX_RETRIES).
JOB_HEARTBEAT_SECONDS = positive_int("JOB_HEARTBEAT_SECONDS", 10)
JOB_STALE_SECONDS = positive_int("JOB_STALE_SECONDS", 120)
# Times the reaper requeues a lost job before failing it with LOST_WORKER.
JOB_MAX_REQUEUES = env.int("JOB_MAX_REQUEUES", default=3)
JOB_REAPER_INTERVAL_SECONDS = positive_int("JOB_REAPER_INTERVAL_SECONDS", 60)
REAPER_INSPECT_TIMEOUT_SECONDS = env.float("REAPER_INSPECT_TIMEOUT_SECONDS", default=1.5)

CELERY_BEAT_SCHEDULE["reap-stuck-jobs"] = {
    "task": "documents.reap_stuck_jobs",
    "schedule": JOB_REAPER_INTERVAL_SECONDS,
}
CELERY_BEAT_SCHEDULE["prune-storage"] = {
    "task": "documents.prune_storage",
    "schedule": RETENTION_INTERVAL_MINUTES * 60,
}

# Shared cache (rate-limit counters and similar), in Redis.
CACHE_URL = env.str("CACHE_URL", default="") or REDIS_URL
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "docling-service",
    },
}

# Default per-key rates as "N/period" (s, min, hour, day); an empty value
# means no limit. Tenants and keys can override them in the admin.
RATE_LIMITS = {
    "burst": env.str("RATE_LIMIT_BURST", default="120/min"),
    "sustained": env.str("RATE_LIMIT_SUSTAINED", default="20000/day"),
    "upload_burst": env.str("RATE_LIMIT_UPLOAD_BURST", default="20/min"),
    "upload_sustained": env.str("RATE_LIMIT_UPLOAD_SUSTAINED", default="2000/day"),
}
for _kind, _rate in RATE_LIMITS.items():
    _count, _, _period = _rate.partition("/")
    if _rate and (not _count.isdigit() or not _period or _period[0] not in "smhd"):
        raise ImproperlyConfigured(
            f"RATE_LIMIT_{_kind.upper()} must look like '60/min' or '1000/day', got '{_rate}'."
        )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasScopes"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.BurstThrottle",
        "accounts.throttling.SustainedThrottle",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "docling-service API",
    "VERSION": "1",
    "DESCRIPTION": "",  # Filled in by core.apps from the error code table.
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "documents.models.IngestionJob.Status",
        "JobStageEnum": "documents.models.IngestionJob.Stage",
        "DocumentStatusEnum": "documents.models.Document.Status",
        "ArtifactKindEnum": "documents.models.Artifact.Kind",
    },
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")


def build_logging(log_format: str, level: str) -> dict:
    """Build LOGGING for LOG_FORMAT (json or plain); reject other formats at start-up."""
    try:
        return logging_config(log_format, level)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from exc


# json: one JSON object per line, with request_id, job_id and celery_task_id
# (the prod settings' default); plain: text lines with the same ids.
LOG_FORMAT = env.str("LOG_FORMAT", default="") or "plain"
LOGGING = build_logging(LOG_FORMAT, LOG_LEVEL)
