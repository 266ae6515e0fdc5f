"""Job actions: queue a stage, cancel, retry, and reuse an earlier result.

Views, tasks, the reaper and admin actions all go through these functions,
so a job changes state the same way whichever caller requests it.
"""

import hashlib
import json
import logging
import shutil
import uuid
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import ApiKey
from core.errors import ServiceError

from . import storage
from .models import Artifact, Document, IngestionJob, JobEvent

logger = logging.getLogger(__name__)

Stage = IngestionJob.Stage
Status = IngestionJob.Status

RETRYABLE_STATUSES = (Status.FAILED, Status.CANCELED)
# Options that change how a job runs, not what it produces.
OPTIONS_OUTSIDE_DEDUPE_KEY = ("force",)


def record_event(
    job: IngestionJob,
    message: str,
    payload: dict[str, Any] | None = None,
    level: str = JobEvent.Level.INFO,
) -> None:
    JobEvent.objects.create(job=job, level=level, message=message, payload_json=payload or {})


def stage_task(stage: str):  # noqa: ANN201 - a Celery task
    from . import tasks

    return {
        Stage.SCANNING: tasks.scan_pdf_task,
        Stage.CONVERTING: tasks.docling_convert_task,
        Stage.EXPORTING: tasks.export_artifacts_task,
        Stage.CHUNKING: tasks.chunking_task,
        Stage.FINALIZING: tasks.finalize_job_task,
    }[stage]


def enqueue_stage(job: IngestionJob, stage: str) -> str:
    """Queue the task for `stage` once the current transaction commits.

    The new task id is stored on the job first: it is the only task allowed
    to run that stage, so a stale copy of an earlier task exits at once.
    """
    task_id = str(uuid.uuid4())
    IngestionJob.objects.filter(pk=job.pk).update(
        stage=stage, celery_task_id=task_id, heartbeat_at=timezone.now()
    )
    job.stage = stage
    job.celery_task_id = task_id
    task = stage_task(stage)
    job_id = str(job.pk)
    queue = settings.CELERY_TASK_DEFAULT_QUEUE

    def publish() -> None:
        # The job row is already committed, so failing here would tell an
        # uploading client that nothing was stored when the job exists.
        # Its heartbeat_at was set above, so the reaper requeues it once
        # that is JOB_STALE_SECONDS old and the task is nowhere.
        try:
            task.apply_async(args=[job_id], task_id=task_id, queue=queue)
        except OperationalError as exc:
            logger.error(
                "Could not send the %s task of job %s to the broker (%s); "
                "the reaper will requeue the job",
                stage, job_id, exc,
            )

    transaction.on_commit(publish)
    return task_id


def docling_versions() -> dict[str, str]:
    """Return the installed Docling versions without importing Docling."""
    versions = {}
    for package in ("docling", "docling-core"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def compute_dedupe_key(sha256: str, options: dict[str, Any]) -> str:
    relevant = {k: v for k, v in options.items() if k not in OPTIONS_OUTSIDE_DEDUPE_KEY}
    payload = json.dumps(
        {"sha256": sha256, "options": relevant, "versions": docling_versions()},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


# --- cancel -----------------------------------------------------------------

def cancel_job(job: IngestionJob, api_key: ApiKey | None) -> IngestionJob:
    """Cancel a queued or running job.

    A queued job never starts: its task finds the job terminal and exits. A
    running task is revoked with SIGKILL, so the conversion stops at once;
    the worker replaces the killed process. Outputs written so far are
    removed, so a canceled job has no half-set of artifacts.
    """
    with transaction.atomic():
        locked = IngestionJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_terminal:
            raise ServiceError(
                f"The job is already {locked.status} and cannot be canceled.",
                error_code="JOB_NOT_CANCELABLE",
                status_code=409,
                details={"status": locked.status},
            )
        was_running = locked.status == Status.RUNNING
        task_id = locked.celery_task_id
        locked.mark_finished(
            Status.CANCELED,
            error_code="CANCELED",
            error_message="The job was canceled on request.",
        )
        locked.save()
    if was_running and task_id:
        from docling_service.celery import app

        app.control.revoke(task_id, terminate=True, signal="SIGKILL")
    discard_outputs(locked)
    who = f"key {api_key.prefix}" if api_key else "an operator"
    record_event(locked, f"Job canceled by {who}", {"was_running": was_running})
    logger.info("Job %s canceled by %s (was running: %s)", locked.pk, who, was_running)
    return locked


def discard_outputs(job: IngestionJob) -> None:
    """Remove a job's artifacts (rows and files) and its intermediate files."""
    Artifact.objects.filter(job=job).delete()
    for relpath in (
        storage.artifact_dir_relpath(job.tenant_id, job.pk),
        storage.work_dir_relpath(job.tenant_id, job.pk),
    ):
        shutil.rmtree(storage.resolve(relpath), ignore_errors=True)


# --- retry ------------------------------------------------------------------

def retry_job(job: IngestionJob, api_key: ApiKey | None) -> IngestionJob:
    """Run a FAILED or CANCELED job again, from the stage where it stopped.

    The conversion is kept when its Docling JSON is still intact (checked
    against the checksum recorded when it was written); otherwise the job
    restarts at conversion, or at the scan when the file was never found
    clean. Each retry adds one to `attempt`, up to 1 + `max_retries`.
    """
    from .pipeline import intact_conversion

    with transaction.atomic():
        locked = (
            IngestionJob.objects.select_for_update()
            .select_related("document")
            .get(pk=job.pk)
        )
        if locked.status not in RETRYABLE_STATUSES:
            raise ServiceError(
                f"Only FAILED or CANCELED jobs can be retried; this one is {locked.status}.",
                error_code="JOB_NOT_RETRYABLE",
                status_code=409,
                details={"status": locked.status},
            )
        if locked.attempt > locked.max_retries:
            raise ServiceError(
                f"The job has used all {locked.max_retries} retries. Start a new job "
                "with POST /v1/documents/{id}/ingest instead.",
                error_code="RETRY_LIMIT_REACHED",
                status_code=409,
                details={"attempt": locked.attempt, "max_retries": locked.max_retries},
            )
        document = locked.document
        if document.status == Document.Status.DELETED:
            raise ServiceError(
                "The document's file was deleted; upload it again.",
                error_code="DOCUMENT_DELETED",
                status_code=409,
            )
        if document.status != Document.Status.CLEAN:
            stage = Stage.SCANNING
        elif locked.stage in (Stage.SCANNING, Stage.CONVERTING) or not intact_conversion(locked):
            stage = Stage.CONVERTING
        else:
            stage = locked.stage
        previous = {"status": locked.status, "stage": locked.stage, "error_code": locked.error_code}
        locked.attempt += 1
        locked.status = Status.QUEUED
        locked.queued_at = timezone.now()
        locked.started_at = None
        locked.finished_at = None
        locked.duration_ms = None
        locked.error_code = ""
        locked.error_message = ""
        locked.error_details_json = {}
        locked.save()
        enqueue_stage(locked, stage)
        who = f"key {api_key.prefix}" if api_key else "an operator"
        record_event(
            locked,
            f"Retry {locked.attempt - 1} requested by {who}; restarting at {stage}",
            {"previous": previous, "stage": stage},
        )
    logger.info("Job %s retried (attempt %s) from %s", locked.pk, locked.attempt, stage)
    return locked


# --- reuse ------------------------------------------------------------------

def find_reusable_job(job: IngestionJob) -> IngestionJob | None:
    """Return an earlier SUCCEEDED job of the tenant with the same dedupe key."""
    if not job.dedupe_key or job.options_json.get("force"):
        return None
    return (
        IngestionJob.objects.filter(
            tenant_id=job.tenant_id, dedupe_key=job.dedupe_key, status=Status.SUCCEEDED
        )
        .exclude(pk=job.pk)
        .order_by("-finished_at")
        .first()
    )


def reuse_artifacts(job: IngestionJob, source: IngestionJob) -> bool:
    """Hard-link the source job's artifacts into this job; False if any is damaged.

    Each source file is checked against its stored checksum first, so a
    damaged or missing file is never copied into a new job.
    """
    artifacts = list(Artifact.objects.filter(job=source, deleted_at__isnull=True))
    if not artifacts:
        return False
    for artifact in artifacts:
        path = artifact.get_path()
        if not path.exists() or storage.sha256_of(path) != artifact.checksum_sha256:
            logger.warning("Artifact %s of job %s is damaged; not reused", artifact.pk, source.pk)
            return False
    target_dir = storage.resolve(storage.artifact_dir_relpath(job.tenant_id, job.pk))
    for artifact in artifacts:
        name = artifact.get_path().name
        relpath = f"{storage.artifact_dir_relpath(job.tenant_id, job.pk)}/{name}"
        storage.link_atomic(artifact.get_path(), target_dir / name)
        Artifact.objects.update_or_create(
            tenant_id=job.tenant_id,
            job=job,
            kind=artifact.kind,
            defaults={
                "created_by_key_id": job.created_by_key_id,
                "storage_relpath": relpath,
                "checksum_sha256": artifact.checksum_sha256,
                "size_bytes": artifact.size_bytes,
                "content_type": artifact.content_type,
                "deleted_at": None,
            },
        )
    return True
