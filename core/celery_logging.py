"""Carry the request id into Celery tasks and bind the ids for each task's logs.

- A task sent while a request id is bound (an API request, or another task
  of the same job) gets it in the `request_id` message header.
- At task start (`task_prerun`) the log context is set to the task's id,
  its `job_id` argument, and the request id from the header or, when the
  header is missing (a task queued by Celery Beat or a command), from the
  job's row. `task_postrun` restores the previous context.
- The worker keeps Django's LOGGING (JSON or plain, with the context
  filter) instead of installing Celery's own handlers.

Celery's "succeeded", "failed" and "retry" lines are written between
`task_prerun` and `task_postrun` (celery/app/trace.py, Celery 5.7), so they
carry the ids too.

NOTE: the worker's "Task ... received" line comes from the main process
before the task starts, so it carries only celery_task_id (taken from
Celery's `data` extra by the log filter), not request_id or job_id.
"""

import inspect
import logging
import logging.config
from contextvars import Token
from typing import Any

from celery import Task
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun
from django.conf import settings

from .logging import current_request_id, replace_log_context, reset_log_context

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "request_id"
JOB_ID_ARGUMENT = "job_id"

# Tokens of the contexts bound at task start, by Celery task id.
_task_tokens: dict[str, Token] = {}


@setup_logging.connect
def use_django_logging(**kwargs: Any) -> None:
    """Configure the worker's logging from Django's LOGGING, not Celery's defaults."""
    logging.config.dictConfig(settings.LOGGING)


@before_task_publish.connect
def add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = current_request_id()
    if headers is not None and request_id:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


def job_id_argument(task: Task, args: tuple, kwargs: dict) -> str:
    """Return the value of the task's `job_id` parameter, or "" when it has none."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {}))
    except (TypeError, ValueError):
        return ""
    return str(bound.arguments.get(JOB_ID_ARGUMENT) or "")


def request_id_of_job(job_id: str) -> str:
    # Imported here: this module is loaded with the Celery app, before
    # Django's app registry is ready.
    from django.core.exceptions import ValidationError
    from django.db import DatabaseError

    from documents.models import IngestionJob

    try:
        request_id = (
            IngestionJob.objects.filter(pk=job_id).values_list("request_id", flat=True).first()
        )
    except ValidationError:
        return ""
    except DatabaseError as exc:
        logger.warning("Could not read the request id of job %s: %s", job_id, exc)
        return ""
    return request_id or ""


@task_prerun.connect
def bind_task_log_context(
    task_id: str | None = None,
    task: Task | None = None,
    args: tuple = (),
    kwargs: dict | None = None,
    **extra: Any,
) -> None:
    if task is None or task_id is None:
        return
    job_id = job_id_argument(task, args, kwargs or {})
    request_id = str(getattr(task.request, REQUEST_ID_HEADER, "") or "")
    if job_id and not request_id:
        request_id = request_id_of_job(job_id)
    _task_tokens[task_id] = replace_log_context(
        request_id=request_id, job_id=job_id, celery_task_id=task_id
    )


@task_postrun.connect
def unbind_task_log_context(task_id: str | None = None, **extra: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        reset_log_context(token)
