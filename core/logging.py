"""Log context (request id, job id, Celery task id) and the log formatters.

The request-id middleware and the Celery task signals bind the ids in a
context variable; `LogContextFilter`, attached to the console handler,
copies them onto every record, so a log line of a job carries them whichever
logger wrote it. This module imports no Django code, because the settings
build `LOGGING` with `logging_config`.
"""

import contextvars
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# The ids every record gets, as attributes of the same names; "" when unset.
CONTEXT_FIELDS = ("request_id", "job_id", "celery_task_id")
LOG_FORMATS = ("json", "plain")

# Never mutated: binding sets a new mapping, so a token can restore the old one.
_log_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "log_context", default=MappingProxyType({})
)


def get_log_context() -> Mapping[str, str]:
    return _log_context.get()


def bind_log_context(**values: str) -> contextvars.Token:
    """Add ids to the current log context; pass the token to `reset_log_context`."""
    unknown = set(values) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"Unknown log context fields: {sorted(unknown)}; use {CONTEXT_FIELDS}.")
    merged = {**_log_context.get(), **{key: str(value) for key, value in values.items() if value}}
    return _log_context.set(merged)


def replace_log_context(**values: str) -> contextvars.Token:
    """Set the log context to exactly these ids, dropping any bound before."""
    token = _log_context.set({})
    bind_log_context(**values)
    return token


def reset_log_context(token: contextvars.Token) -> None:
    _log_context.reset(token)


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    token = bind_log_context(**values)
    try:
        yield
    finally:
        reset_log_context(token)


def current_request_id() -> str:
    return _log_context.get().get("request_id", "")


class LogContextFilter(logging.Filter):
    """Copy the bound ids onto each record; never drops a record.

    Celery's "Task received" line is written by the worker's main process
    before any task context exists; its `data` extra holds the task id, which
    is used when no id is bound.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        context = _log_context.get()
        for field in CONTEXT_FIELDS:
            if not getattr(record, field, ""):
                setattr(record, field, context.get(field, ""))
        celery_data = getattr(record, "data", None)
        if not record.celery_task_id and isinstance(celery_data, dict):
            record.celery_task_id = str(celery_data.get("id") or "")
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line.

    Keys: `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger`,
    `message`, the context ids that are set, and `exception` with the
    traceback when there is one.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, "")
            if value:
                entry[field] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """Format a record as one text line, with the context ids that are set at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{field}={getattr(record, field)}"
            for field in CONTEXT_FIELDS
            if getattr(record, field, "")
        ]
        if not ids:
            return line
        first, newline, rest = line.partition("\n")
        return f"{first} [{' '.join(ids)}]{newline}{rest}"


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """Build the LOGGING dict: one console handler with the context filter."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got '{log_format}'.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"log_context": {"()": "core.logging.LogContextFilter"}},
        "formatters": {
            "json": {"()": "core.logging.JsonFormatter"},
            "plain": {"()": "core.logging.PlainFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["log_context"],
            },
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.request": {"level": "ERROR"},
        },
    }
