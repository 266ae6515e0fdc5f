"""Find jobs whose work was lost and requeue or fail them.

A job is suspect when it is QUEUED or RUNNING and its heartbeat is older
than JOB_STALE_SECONDS. It is lost when its current task id is neither in
the broker's queue nor active, reserved or scheduled on any worker. A lost
job is requeued at its current stage, up to JOB_MAX_REQUEUES times, then
fails with LOST_WORKER. A stage that ran past the hard time limit fails with
TIMEOUT instead, because running it again would hit the same limit.
"""

import json
import logging
from datetime import timedelta

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .jobs import enqueue_stage, record_event
from .models import IngestionJob, JobEvent
from .pipeline import JobFailure, fail

logger = logging.getLogger(__name__)

Status = IngestionJob.Status


class BrokerUnavailable(Exception):
    pass


def queued_task_ids() -> set[str]:
    """Return the ids of the task messages waiting in the broker's queue."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
    ids: set[str] = set()
    try:
        for raw in client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1):
            try:
                ids.add(json.loads(raw)["headers"]["id"])
            except (ValueError, KeyError, TypeError):
                continue
    except redis.RedisError as exc:
        raise BrokerUnavailable(str(exc)) from exc
    return ids


def worker_task_ids() -> set[str]:
    """Return the ids of tasks that workers run, hold or have scheduled."""
    from docling_service.celery import app

    inspector = app.control.inspect(timeout=settings.REAPER_INSPECT_TIMEOUT_SECONDS)
    ids: set[str] = set()
    for method in (inspector.active, inspector.reserved):
        for tasks in (method() or {}).values():
            ids.update(task["id"] for task in tasks)
    for entries in (inspector.scheduled() or {}).values():
        ids.update(entry["request"]["id"] for entry in entries)
    return ids


def stale_jobs() -> list[IngestionJob]:
    stale_before = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
    return list(
        IngestionJob.objects.filter(status__in=(Status.QUEUED, Status.RUNNING)).filter(
            Q(heartbeat_at__lt=stale_before)
            | Q(heartbeat_at__isnull=True, updated_at__lt=stale_before)
        )
    )


def reap() -> dict[str, int]:
    """Requeue or fail every lost job; return how many of each."""
    counts = {"requeued": 0, "failed": 0, "alive": 0}
    candidates = stale_jobs()
    if not candidates:
        return counts
    try:
        live = queued_task_ids() | worker_task_ids()
    except BrokerUnavailable as exc:
        logger.warning("Reaper skipped: the broker is unreachable (%s)", exc)
        return counts
    for job in candidates:
        if job.celery_task_id and job.celery_task_id in live:
            counts["alive"] += 1
            continue
        outcome = reap_job(job)
        if outcome:
            counts[outcome] += 1
    if counts["requeued"] or counts["failed"]:
        logger.warning("Reaper requeued %s and failed %s lost jobs", counts["requeued"], counts["failed"])
    return counts


def reap_job(job: IngestionJob) -> str | None:
    """Requeue or fail one lost job; None when it changed meanwhile."""
    hard_limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    with transaction.atomic():
        locked = IngestionJob.objects.select_for_update().filter(pk=job.pk).first()
        if locked is None or locked.is_terminal or locked.heartbeat_at != job.heartbeat_at:
            return None
        ran_past_limit = (
            locked.status == Status.RUNNING
            and locked.stage_started_at is not None
            and locked.heartbeat_at is not None
            and locked.heartbeat_at - locked.stage_started_at >= hard_limit - timedelta(seconds=settings.JOB_HEARTBEAT_SECONDS)
        )
        if not ran_past_limit and locked.requeue_count < settings.JOB_MAX_REQUEUES:
            locked.requeue_count += 1
            locked.save(update_fields=["requeue_count", "updated_at"])
            stage = locked.stage
            enqueue_stage(locked, stage)
            record_event(
                locked,
                f"Lost task requeued at {stage} ({locked.requeue_count} of {settings.JOB_MAX_REQUEUES})",
                {"previous_task_id": job.celery_task_id},
                level=JobEvent.Level.WARNING,
            )
            logger.warning("Job %s lost its task at %s; requeued", locked.pk, stage)
            return "requeued"
    if ran_past_limit:
        failure = JobFailure(
            "TIMEOUT",
            f"The {locked.stage.lower()} stage was killed at the hard time limit of "
            f"{settings.CELERY_TASK_TIME_LIMIT} seconds (CELERY_TASK_TIME_LIMIT).",
            {"limit_seconds": settings.CELERY_TASK_TIME_LIMIT},
        )
    else:
        failure = JobFailure(
            "LOST_WORKER",
            f"The worker running the job was lost {locked.requeue_count + 1} times "
            f"(the limit is JOB_MAX_REQUEUES={settings.JOB_MAX_REQUEUES}). Retry the job.",
            {"requeue_count": locked.requeue_count},
        )
    fail(locked, failure)
    return "failed"
