"""Dependency checks behind /readyz, each returning why it failed."""

import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from kombu import Connection

from scanning import ScannerUnavailable

from .engines import current_signature_set, engine_config, scanner

logger = logging.getLogger(__name__)

Check = dict[str, Any]


def check_database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> Check:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as broker:
        broker.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True}


def check_clamd() -> Check:
    clamd = scanner()
    try:
        clamd.ping()
        version = clamd.version()
    except ScannerUnavailable as exc:
        return {"ok": False, "error": f"clamd is unreachable: {exc}"}
    signatures = current_signature_set()
    check: Check = {"ok": True, "version": version, "signature_set": signatures}
    if signatures == "test-only":
        check["warning"] = "Only test signatures are loaded: real malware is not detected."
    return check


def check_docling_models() -> Check:
    from conversion.readiness import check_models

    ok, detail = check_models(engine_config())
    return {"ok": ok, "detail": detail}


CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "broker": check_broker,
    "clamd": check_clamd,
    "docling_models": check_docling_models,
}


# An absolute path of two or more parts, as it appears in error messages.
UNIX_SOCKET_URL = re.compile(r"unix://[^\s:'\"]+")
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(/[\w.@+-]+){2,}/?")


def redact_paths(text: str) -> str:
    """Replace absolute paths, which /readyz must not show to anyone, with <path>."""
    text = UNIX_SOCKET_URL.sub("unix://<path>", text)
    return ABSOLUTE_PATH.sub("<path>", text)


def run_checks() -> dict[str, Check]:
    """Run every check; an exception counts as that check's failure.

    /readyz needs no key, so the messages it returns have local paths
    removed; the full message goes to the log.
    """
    results: dict[str, Check] = {}
    for name, check in CHECKS.items():
        try:
            result = check()
        except Exception as exc:  # noqa: BLE001 - a probe reports, never raises
            logger.warning("Readiness check %s failed: %s", name, exc)
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        for field in ("error", "detail"):
            if isinstance(result.get(field), str):
                result[field] = redact_paths(result[field])
        results[name] = result
    return results
