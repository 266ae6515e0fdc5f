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

from core.engines import engine_config
from scanning import ScannerUnavailable

from . import pipeline
from .models import IngestionJob, JobEvent
from .pipeline import JobFailure, TaskContext
from .services import record_event

logger = logging.getLogger(__name__)

Stage = IngestionJob.Stage


@worker_process_init.connect
def warm_up_docling(**kwargs: object) -> None:
    """Load Docling's models when a worker process starts, not on its first job."""
    if not settings.DOCLING_WARM_UP:
        return
    from conversion.docling_engine import get_engine
    from conversion.interface import ConversionError

    try:
        get_engine(engine_config()).warm_up()
    except ConversionError as exc:
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
    next_task: Task | None,
) -> None:
    job = pipeline.claim(job_id, stage, _context(task))
    if job is None:
        return
    try:
        go_on = work(job)
    except JobFailure as failure:
        pipeline.fail(job, failure)
        return
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
        return
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
        return
    if go_on and next_task is not None:
        next_task.delay(job_id)


@shared_task(bind=True, name="documents.finalize_job_task")
def finalize_job_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.FINALIZING, pipeline.run_finalize, None)


@shared_task(bind=True, name="documents.chunking_task")
def chunking_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.CHUNKING, pipeline.run_chunking, finalize_job_task)


@shared_task(bind=True, name="documents.export_artifacts_task")
def export_artifacts_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.EXPORTING, pipeline.run_export, chunking_task)


@shared_task(bind=True, name="documents.docling_convert_task")
def docling_convert_task(self: Task, job_id: str) -> None:
    _run_stage(self, job_id, Stage.CONVERTING, pipeline.run_convert, export_artifacts_task)


@shared_task(bind=True, name="documents.scan_pdf_task")
def scan_pdf_task(self: Task, job_id: str) -> None:
    """Scan the upload; clamd being unreachable is retried with backoff, then fails closed."""
    try:
        _run_stage(self, job_id, Stage.SCANNING, pipeline.run_scan, docling_convert_task)
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
