"""Celery tasks, one per pipeline stage, each given only a job id.

A task claims the job for its stage, runs the stage and queues the next
task. Failures that belong to the document end the job once with a stable
error code; only an unreachable clamd is retried.
"""

import logging
from collections.abc import Callable

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init
from django.conf import settings
from django.db import OperationalError

from core.engines import engine_config
from scanning import ScannerUnavailable

from . import pipeline, storage
from .jobs import discard_outputs, record_event
from .models import IngestionJob, JobEvent
from .pipeline import JobFailure, TaskContext

logger = logging.getLogger(__name__)

Stage = IngestionJob.Stage
CLAIM_RETRY_SECONDS = 2
CLAIM_MAX_RETRIES = 10


@worker_process_init.connect
def warm_up_docling(**kwargs: object) -> None:
    """Start the conversion process, which loads Docling's models, with the worker process."""
    if not settings.DOCLING_WARM_UP:
        return
    from conversion.interface import ConversionError
    from conversion.sandbox import ProcessCrashed, conversion_process

    try:
        conversion_process(engine_config()).start()
    except (ConversionError, ProcessCrashed) as exc:
        # Jobs will fail with the same code; the worker still starts so that
        # scans and readiness probes keep working.
        logger.error("Docling warm-up failed: %s", exc)
    else:
        logger.info("Docling converter ready in worker process")


def _context(task: Task) -> TaskContext:
    return TaskContext(hostname=task.request.hostname or "", task_id=task.request.id or "")


def _run_stage(
    task: Task,
    job_id: str,
    stage: str,
    work: Callable[[IngestionJob], bool],
) -> None:
    try:
        job = pipeline.claim(job_id, stage, _context(task))
    except OperationalError as exc:
        # The database was briefly unavailable (SQLite locked by another
        # process, a PostgreSQL restart): nothing was claimed, so try again.
        logger.warning("Could not claim job %s for %s: %s; retrying", job_id, stage, exc)
        raise task.retry(exc=exc, countdown=CLAIM_RETRY_SECONDS, max_retries=CLAIM_MAX_RETRIES)
    if job is None:
        return
    try:
        with pipeline.Heartbeat(job.pk, settings.JOB_HEARTBEAT_SECONDS), storage.raising_storage_full():
            work(job)
    except JobFailure as failure:
        pipeline.fail(job, failure)
    except storage.StorageFull:
        pipeline.fail(
            job,
            JobFailure(
                "STORAGE_FULL",
                f"DATA_ROOT ran out of space during the {stage.lower()} stage. The job's partial "
                "outputs were removed; retry the job once the operator has freed space.",
            ),
        )
    except SoftTimeLimitExceeded:
        limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
        pipeline.fail(
            job,
            JobFailure(
                "TIMEOUT",
                f"The {stage.lower()} stage ran past the time limit of {limit} seconds "
                "(CELERY_TASK_SOFT_TIME_LIMIT).",
                {"limit_seconds": limit},
            ),
        )
    except ScannerUnavailable:
        raise
    except Exception as exc:
        logger.exception("Job %s failed at %s", job_id, stage)
        pipeline.fail(
            job,
            JobFailure(
                "INTERNAL_ERROR",
                f"The {stage.lower()} stage failed unexpectedly ({type(exc).__name__}). "
                "The error is logged on the worker; retry the job or contact the operator.",
            ),
        )
    # A full disk must not leave a half-set of outputs, and deleting them frees space.
    if job.error_code == "STORAGE_FULL":
        discard_outputs(job)
    # A job canceled while this stage ran may have outputs the cancel did not
    # see yet; remove them so a canceled job never keeps a partial set.
    if IngestionJob.objects.filter(pk=job.pk, status=IngestionJob.Status.CANCELED).exists():
        discard_outputs(job)


@shared_task(bind=True, name="documents.finalize_job_task")
def finalize_job_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.FINALIZING, pipeline.run_finalize)


@shared_task(bind=True, name="documents.chunking_task")
def chunking_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.CHUNKING, pipeline.run_chunking)


@shared_task(bind=True, name="documents.export_artifacts_task")
def export_artifacts_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.EXPORTING, pipeline.run_export)


@shared_task(bind=True, name="documents.docling_convert_task")
def docling_convert_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.CONVERTING, pipeline.run_convert)


@shared_task(bind=True, name="documents.scan_pdf_task")
def scan_pdf_task(self: Task, job_id: str) -> None:
    """Scan the upload; clamd being unreachable is retried with backoff, then fails closed."""
    try:
        _run_stage(self, job_id, Stage.SCANNING, pipeline.run_scan)
    except ScannerUnavailable as exc:
        job = IngestionJob.objects.filter(pk=job_id).first()
        if job is None:
            return
        retries = self.request.retries
        if retries < settings.SCAN_MAX_RETRIES:
            countdown = settings.SCAN_RETRY_BACKOFF_SECONDS * 2**retries
            record_event(
                job,
                "clamd unreachable; scan retried",
                {"retry": retries + 1, "countdown_seconds": countdown, "error": str(exc)},
                level=JobEvent.Level.WARNING,
            )
            logger.warning(
                "clamd unreachable for job %s (retry %s in %s s): %s",
                job_id, retries + 1, countdown, exc,
            )
            raise self.retry(exc=exc, countdown=countdown, max_retries=settings.SCAN_MAX_RETRIES)
        pipeline.fail(
            job,
            JobFailure(
                "SCANNER_UNAVAILABLE",
                f"The virus scanner (clamd) was unreachable after {retries + 1} attempts; "
                "the file was not converted. Retry once clamd is running.",
            ),
        )


@shared_task(name="documents.reap_stuck_jobs")
def reap_stuck_jobs() -> dict[str, int]:
    """Requeue or fail jobs whose worker or task message was lost (Celery Beat)."""
    from .reaper import reap

    return reap()


@shared_task(name="documents.prune_storage")
def prune_storage_task() -> dict[str, int]:
    """Apply the retention rules once (Celery Beat, every RETENTION_INTERVAL_MINUTES)."""
    from .retention import prune_storage

    return prune_storage().counts()
