"""The work of each pipeline stage: scan, convert, export, chunk, finalize.

Each stage function takes a job id, claims the job for its stage with a row
lock, does its work outside the lock and hands over to the next stage. A
stage that finds the job gone, terminal or already past its stage returns
without doing anything, so a redelivered task is harmless.
"""

import contextvars
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.engines import current_signature_set, engine_config, scanner
from scanning import ScanFailed

from . import storage
from .jobs import discard_outputs, enqueue_stage, find_reusable_job, record_event, reuse_artifacts
from .models import Artifact, Document, IngestionJob, JobEvent

logger = logging.getLogger(__name__)

Stage = IngestionJob.Stage
Status = IngestionJob.Status

# clamd's verdict (with AlertEncryptedDoc) on a PDF that needs a password.
ENCRYPTED_PDF_HEURISTIC = "Heuristics.Encrypted.PDF"
# clamd's verdict (with AlertExceedsMax) on a file past MaxFileSize, MaxScanSize...
LIMITS_EXCEEDED_HEURISTIC = "Heuristics.Limits.Exceeded"
CONVERT_META_NAME = "convert.json"
DOCLING_JSON_NAME = "docling.json"

ARTIFACT_FILES: dict[str, tuple[str, str]] = {
    Artifact.Kind.DOCLING_JSON: ("document.json", "application/json"),
    Artifact.Kind.MARKDOWN: ("document.md", "text/markdown; charset=utf-8"),
    Artifact.Kind.TEXT: ("document.txt", "text/plain; charset=utf-8"),
    Artifact.Kind.DOCTAGS: ("document.doctags.txt", "text/plain; charset=utf-8"),
    Artifact.Kind.CHUNKS_JSON: ("chunks.json", "application/json"),
}


class JobFailure(Exception):
    """A failure that ends the job with a stable error code."""

    def __init__(self, error_code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class TaskContext:
    hostname: str
    task_id: str


def claim(job_id: str, stage: str, context: TaskContext) -> IngestionJob | None:
    """Lock the job and move it into `stage`, or return None if it must not run."""
    with transaction.atomic():
        job = (
            IngestionJob.objects.select_for_update()
            .select_related("document", "tenant")
            .filter(pk=job_id)
            .first()
        )
        if job is None:
            logger.warning("Job %s no longer exists; task %s skipped", job_id, context.task_id)
            return None
        if job.is_terminal:
            logger.info("Job %s is %s; %s skipped", job_id, job.status, stage)
            return None
        order = IngestionJob.STAGE_ORDER
        if order.index(job.stage) > order.index(stage):
            logger.info("Job %s is already at %s; %s skipped", job_id, job.stage, stage)
            return None
        if job.celery_task_id and job.celery_task_id != context.task_id:
            logger.info(
                "Task %s for job %s is stale (expected %s); skipped",
                context.task_id, job_id, job.celery_task_id,
            )
            return None
        first_run = job.status == Status.QUEUED
        job.mark_started(hostname=context.hostname, task_id=context.task_id)
        job.stage = stage
        job.heartbeat_at = job.stage_started_at = timezone.now()
        job.save()
    record_event(job, f"{stage.lower().capitalize()} started", {"task_id": context.task_id})
    if first_run:
        logger.info("Job %s started on %s", job_id, context.hostname)
    return job


def complete_stage(
    job: IngestionJob, timing_field: str | None, elapsed_ms: int, next_stage: str | None
) -> bool:
    """Store the stage's time and queue the next stage.

    Returns False, and queues nothing, when the job was ended (canceled,
    failed by the reaper) or handed to another task while this stage ran.
    """
    finished_stage = job.stage
    updates: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if timing_field:
        updates[timing_field] = elapsed_ms
    with transaction.atomic():
        updated = IngestionJob.objects.filter(
            pk=job.pk,
            status=Status.RUNNING,
            stage=finished_stage,
            celery_task_id=job.celery_task_id,
        ).update(**updates)
        if not updated:
            return False
        for field, value in updates.items():
            setattr(job, field, value)
        record_event(
            job, f"{finished_stage.lower().capitalize()} finished", {"elapsed_ms": elapsed_ms}
        )
        if next_stage:
            enqueue_stage(job, next_stage)
    return True


class Heartbeat:
    """Touch the job's heartbeat_at from a thread while a stage runs.

    The reaper treats a RUNNING job without a fresh heartbeat as lost. The
    thread uses its own database connection and closes it when it stops.
    """

    def __init__(self, job_id: Any, interval_seconds: float) -> None:
        self.job_id = job_id
        self.interval = interval_seconds
        self._stop = threading.Event()
        # A new thread starts with an empty context, so it runs in a copy of
        # the task's, which keeps request_id, job_id and celery_task_id on its
        # log lines.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run,), name=f"heartbeat-{job_id}", daemon=True
        )

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                IngestionJob.objects.filter(pk=self.job_id, status=Status.RUNNING).update(
                    heartbeat_at=timezone.now()
                )
        except Exception:  # noqa: BLE001 - a missed heartbeat must not kill the stage
            logger.exception("Heartbeat of job %s failed", self.job_id)
        finally:
            connection.close()


def fail(job: IngestionJob, failure: JobFailure, status: str = Status.FAILED) -> None:
    """End the job with an error code, unless something else already ended it."""
    with transaction.atomic():
        locked = IngestionJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_terminal:
            return
        locked.mark_finished(
            status,
            error_code=failure.error_code,
            error_message=failure.message,
            error_details=failure.details,
        )
        locked.save()
    level = JobEvent.Level.WARNING if status == Status.QUARANTINED else JobEvent.Level.ERROR
    record_event(
        locked,
        f"Job {status.lower()} at {locked.stage.lower()}: {failure.error_code}",
        {"error_code": failure.error_code, "message": failure.message, **failure.details},
        level=level,
    )
    logger.warning(
        "Job %s %s at stage %s: %s", job.pk, status, locked.stage, failure.error_code
    )
    job.refresh_from_db()


def elapsed_ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def work_dir(job: IngestionJob) -> Path:
    return storage.resolve(storage.work_dir_relpath(job.tenant_id, job.id))


# --- scan -------------------------------------------------------------------

def run_scan(job: IngestionJob) -> bool:
    """Scan the quarantined file; True when the job may go on to conversion.

    Raises scanning.ScannerUnavailable for the task to retry with backoff.
    """
    document = job.document
    start = time.monotonic()
    if document.status == Document.Status.INFECTED:
        fail(job, _virus_failure(document, {}), status=Status.QUARANTINED)
        return False
    if document.status == Document.Status.UPLOADED:
        try:
            result = scanner().scan_file(document.get_quarantine_path())
        except ScanFailed as exc:
            raise JobFailure("SCAN_FAILED", f"The virus scanner rejected the file: {exc}") from exc
        if not result.clean and (result.signature or "").startswith(LIMITS_EXCEEDED_HEURISTIC):
            # The file expands past what clamd inspects (with AlertExceedsMax):
            # no virus was found, but the file was not fully scanned either.
            record_event(job, "Scan result", {"clean": False, "signature": result.signature})
            raise JobFailure(
                "SCAN_LIMIT_EXCEEDED",
                "The file expands beyond the virus scanner's limits, so it cannot be scanned "
                "completely and is not converted.",
                {"signature": result.signature},
            )
        if not result.clean and (result.signature or "").startswith(ENCRYPTED_PDF_HEURISTIC):
            # clamd cannot look inside a PDF that needs a password, and
            # neither can Docling: the file stays in quarantine, unconverted.
            record_event(job, "Scan result", {"clean": False, "signature": result.signature})
            raise JobFailure(
                "PDF_ENCRYPTED",
                "The PDF is encrypted with a password, so it can be neither scanned nor "
                "converted. Upload a copy without a password.",
                {"signature": result.signature},
            )
        _record_scan_result(job, document, result.clean, result.signature)
        if not result.clean:
            fail(job, _virus_failure(document, {"signature": result.signature}), status=Status.QUARANTINED)
            return False
    options = {**job.options_json, "signature_set": current_signature_set()}
    IngestionJob.objects.filter(pk=job.pk).update(options_json=options)
    job.options_json = options
    source = find_reusable_job(job)
    if source is not None and reuse_artifacts(job, source):
        finish_reused(job, source, elapsed_ms_since(start))
        return False
    return complete_stage(job, "scan_ms", elapsed_ms_since(start), Stage.CONVERTING)


def finish_reused(job: IngestionJob, source: IngestionJob, scan_ms: int) -> None:
    """End the job with the artifacts of an identical earlier job, converting nothing."""
    with transaction.atomic():
        locked = IngestionJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_terminal or locked.celery_task_id != job.celery_task_id:
            if locked.status == Status.CANCELED:
                discard_outputs(locked)
            return
        locked.scan_ms = scan_ms
        locked.convert_ms = locked.export_ms = locked.chunk_ms = 0
        locked.reused_from = source
        locked.docling_version = source.docling_version
        locked.options_json = {**locked.options_json, "engine": source.options_json.get("engine", {})}
        locked.pages_total = locked.pages_done = source.pages_total
        locked.stage = Stage.FINALIZING
        locked.mark_finished(Status.SUCCEEDED)
        locked.save()
        page_count = source.document.page_count
        Document.objects.filter(pk=locked.document_id).update(page_count=page_count)
    record_event(locked, "Job succeeded with the artifacts of an identical job", {"reused_from": str(source.pk)})
    logger.info("Job %s reused the artifacts of job %s", job.pk, source.pk)


def _virus_failure(document: Document, details: dict[str, Any]) -> JobFailure:
    signature = details.get("signature") or "a known signature"
    return JobFailure(
        "VIRUS_FOUND",
        f"The virus scanner found {signature} in the file; it will not be converted.",
        details,
    )


def _record_scan_result(
    job: IngestionJob, document: Document, clean: bool, signature: str | None
) -> None:
    """Move a clean file out of quarantine, or mark the document INFECTED."""
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        if locked.status != Document.Status.UPLOADED:
            document.refresh_from_db()
            return
        if clean:
            relpath = storage.clean_relpath(locked.tenant_id, locked.id)
            storage.move_atomic(locked.get_quarantine_path(), storage.resolve(relpath))
            locked.storage_relpath_clean = relpath
            locked.storage_relpath_quarantine = ""
            locked.status = Document.Status.CLEAN
        else:
            locked.status = Document.Status.INFECTED
        locked.save()
    document.refresh_from_db()
    record_event(job, "Scan result", {"clean": clean, "signature": signature})


# --- convert ----------------------------------------------------------------

class ProgressRecorder:
    """Store pages_done and pages_total, at most about once a second.

    Docling calls it after every page; writing each call would cost a
    database round trip per page for little use.
    """

    MIN_INTERVAL_SECONDS = 1.0

    def __init__(self, job: IngestionJob) -> None:
        self.job_id = job.pk
        self._last_write = 0.0

    def __call__(self, pages_done: int, pages_total: int) -> None:
        now = time.monotonic()
        if pages_done < pages_total and now - self._last_write < self.MIN_INTERVAL_SECONDS:
            return
        self._last_write = now
        IngestionJob.objects.filter(pk=self.job_id).update(
            pages_done=pages_done, pages_total=pages_total, heartbeat_at=timezone.now()
        )


def engine_config_for(options: dict[str, Any]):  # noqa: ANN201 - conversion.EngineConfig
    """Return the process engine config with the job's layout and OCR engine choices."""
    from dataclasses import replace

    config = engine_config()
    overrides = {}
    if options.get("layout_engine", "default") != "default":
        overrides["layout_engine"] = options["layout_engine"]
    if options.get("ocr_engine", "default") != "default":
        overrides["ocr_engine"] = options["ocr_engine"]
    return replace(config, **overrides) if overrides else config


def run_convert(job: IngestionJob) -> bool:
    from conversion.interface import ConversionError, ConversionOptions
    from conversion.sandbox import ProcessCrashed, conversion_process

    options = job.options_json
    max_file_size_mb = options.get("max_file_size_mb")
    if max_file_size_mb and job.document.size_bytes > max_file_size_mb * 1024 * 1024:
        raise JobFailure(
            "FILE_TOO_LARGE",
            f"The document is {job.document.size_bytes} bytes, more than the job's "
            f"max_file_size_mb of {max_file_size_mb}.",
            {"size_bytes": job.document.size_bytes, "limit_mb": max_file_size_mb},
        )
    page_range = options.get("page_range")
    conversion_options = ConversionOptions(
        do_ocr=options["do_ocr"],
        ocr_languages=tuple(options["ocr_languages"]),
        force_full_page_ocr=options["force_full_page_ocr"],
        do_table_structure=options["do_table_structure"],
        table_mode=options.get("table_mode", "accurate"),
        max_pages=options["max_pages"],
        max_file_size_bytes=settings.UPLOAD_MAX_SIZE_BYTES,
        page_range=tuple(page_range) if page_range else None,
        max_page_side_inches=settings.MAX_PAGE_SIDE_INCHES,
        max_image_pixels=settings.MAX_IMAGE_PIXELS,
    )
    limits = sandbox_limits()
    folder = work_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    IngestionJob.objects.filter(pk=job.pk).update(pages_done=0, pages_total=None)
    start = time.monotonic()
    try:
        # The document name is stored in the Docling JSON; the client's file
        # name (not the storage name) keeps artifacts identical across uploads.
        result = conversion_process(engine_config_for(options)).convert(
            job.document.get_clean_path(),
            conversion_options,
            folder / DOCLING_JSON_NAME,
            document_name=job.document.original_filename or "document.pdf",
            limits=limits,
            progress_callback=ProgressRecorder(job),
        )
    except ProcessCrashed as crash:
        return handle_crash(job, crash)
    except ConversionError as exc:
        # Docling catches exceptions raised inside its pipeline, Celery's
        # soft time limit included, and reports them as a failed status.
        if isinstance(exc.__cause__, SoftTimeLimitExceeded) or any(
            error.startswith(SoftTimeLimitExceeded.__name__) for error in exc.internal_errors
        ):
            raise SoftTimeLimitExceeded() from exc
        raise JobFailure(exc.error_code, exc.message, exc.details) from exc
    elapsed = elapsed_ms_since(start)

    meta = {
        "page_count": result.page_count,
        "docling_json_sha256": storage.sha256_of(folder / DOCLING_JSON_NAME),
        "recovered": result.recovered,
    }
    storage.write_atomic(folder / CONVERT_META_NAME, json.dumps(meta).encode())
    snapshot = {
        **options,
        "engine": {
            "docling_version": result.docling_version,
            "docling_core_version": result.docling_core_version,
            "layout_engine": result.layout_engine,
            "ocr_engine": result.ocr_engine,
        },
    }
    IngestionJob.objects.filter(pk=job.pk).update(
        options_json=snapshot,
        docling_version=result.docling_version,
        pages_done=result.page_count,
        pages_total=result.page_count,
    )
    job.options_json = snapshot
    job.docling_version = result.docling_version
    if result.recovered:
        record_event(
            job,
            "Docling recovered from errors in the file; some pages may be incomplete",
            level=JobEvent.Level.WARNING,
        )
    return complete_stage(job, "convert_ms", elapsed, Stage.EXPORTING)


def handle_crash(job: IngestionJob, crash: Any) -> bool:
    """Record a dead conversion process; fail the job or convert once more.

    A broken cap fails at once: the same file would break it again. An
    unexplained crash is tried again until the job has crashed
    CONVERSION_MAX_CRASHES times, so one poison PDF cannot cycle forever.
    """
    IngestionJob.objects.filter(pk=job.pk).update(conversion_crashes=F("conversion_crashes") + 1)
    job.refresh_from_db(fields=["conversion_crashes"])
    logger.error(
        "Conversion process of job %s died (%s): %s %s",
        job.pk, crash.reason, crash.description, crash.details,
    )
    details = {**crash.details, "conversion_crashes": job.conversion_crashes}
    if crash.reason in ("memory", "cpu"):
        raise JobFailure("RESOURCE_LIMIT", crash.description, {**details, "limit": crash.reason})
    if job.conversion_crashes >= settings.CONVERSION_MAX_CRASHES:
        raise JobFailure(
            "WORKER_CRASHED",
            f"{crash.description} The conversion crashed {job.conversion_crashes} times "
            f"(CONVERSION_MAX_CRASHES={settings.CONVERSION_MAX_CRASHES}); it is not tried again.",
            details,
        )
    record_event(
        job,
        f"Conversion process crashed ({crash.description}); converting again",
        details,
        level=JobEvent.Level.WARNING,
    )
    with transaction.atomic():
        updated = IngestionJob.objects.filter(
            pk=job.pk, status=Status.RUNNING, celery_task_id=job.celery_task_id
        ).update(heartbeat_at=timezone.now())
        if updated:
            enqueue_stage(job, Stage.CONVERTING)
    return False


def intact_conversion(job: IngestionJob) -> bool:
    """True when the job's Docling JSON exists and matches its recorded checksum."""
    folder = work_dir(job)
    try:
        meta = json.loads((folder / CONVERT_META_NAME).read_bytes())
        return storage.sha256_of(folder / DOCLING_JSON_NAME) == meta["docling_json_sha256"]
    except (OSError, ValueError, KeyError):
        return False


# --- export and chunk -------------------------------------------------------

def store_artifact(job: IngestionJob, kind: str, data: bytes) -> Artifact:
    """Write one artifact atomically and create or replace its row."""
    filename, content_type = ARTIFACT_FILES[kind]
    relpath = f"{storage.artifact_dir_relpath(job.tenant_id, job.id)}/{filename}"
    checksum = storage.write_atomic(storage.resolve(relpath), data)
    artifact, _ = Artifact.objects.update_or_create(
        tenant_id=job.tenant_id,
        job=job,
        kind=kind,
        defaults={
            "created_by_key_id": job.created_by_key_id,
            "storage_relpath": relpath,
            "checksum_sha256": checksum,
            "size_bytes": len(data),
            "content_type": content_type,
            "deleted_at": None,
        },
    )
    return artifact


def sandbox_limits():  # noqa: ANN201 - conversion.sandbox.Limits
    from conversion.sandbox import Limits

    return Limits(
        memory_mb=settings.CONVERSION_MAX_MEMORY_MB,
        cpu_seconds=settings.CONVERSION_MAX_CPU_SECONDS,
    )


def run_in_sandbox(job: IngestionJob, call: Callable[[Any], Any]) -> Any:
    """Run an export or chunking call in the job's conversion process.

    Docling is imported only there, and the same caps apply as to the
    conversion itself.
    """
    from conversion.interface import ConversionError
    from conversion.sandbox import ProcessCrashed, conversion_process

    try:
        return call(conversion_process(engine_config_for(job.options_json)))
    except ProcessCrashed as crash:
        code = "RESOURCE_LIMIT" if crash.reason in ("memory", "cpu") else "WORKER_CRASHED"
        raise JobFailure(code, crash.description, crash.details) from crash
    except ConversionError as exc:
        raise JobFailure(exc.error_code, exc.message, exc.details) from exc


def run_export(job: IngestionJob) -> bool:
    start = time.monotonic()
    source = work_dir(job) / DOCLING_JSON_NAME
    store_artifact(job, Artifact.Kind.DOCLING_JSON, source.read_bytes())
    kinds = {
        "markdown": Artifact.Kind.MARKDOWN,
        "text": Artifact.Kind.TEXT,
        "doctags": Artifact.Kind.DOCTAGS,
    }
    requested = job.options_json.get("exports", [])
    if requested:
        limits = sandbox_limits()
        exports = run_in_sandbox(job, lambda process: process.export(source, requested, limits))
        for name in requested:
            store_artifact(job, kinds[name], exports[name])
    return complete_stage(job, "export_ms", elapsed_ms_since(start), Stage.CHUNKING)


def run_chunking(job: IngestionJob) -> bool:
    start = time.monotonic()
    chunking = job.options_json.get("chunking", {})
    strategy = chunking.get("strategy", "none")
    if strategy != "none":
        source = work_dir(job) / DOCLING_JSON_NAME
        limits = sandbox_limits()
        chunks = run_in_sandbox(
            job,
            lambda process: process.chunk(
                source,
                limits,
                strategy=strategy,
                max_tokens=chunking["max_tokens"],
                merge_peers=chunking["merge_peers"],
                tokenizer_path=settings.DOCLING_TOKENIZER_PATH,
            ),
        )
        data = json.dumps(
            {"strategy": strategy, "chunks": chunks}, ensure_ascii=False, indent=1
        ).encode("utf-8")
        store_artifact(job, Artifact.Kind.CHUNKS_JSON, data)
    return complete_stage(job, "chunk_ms", elapsed_ms_since(start), Stage.FINALIZING)


# --- finalize ---------------------------------------------------------------

def run_finalize(job: IngestionJob) -> bool:
    folder = work_dir(job)
    meta = json.loads((folder / CONVERT_META_NAME).read_bytes())
    with transaction.atomic():
        locked = IngestionJob.objects.select_for_update().get(pk=job.pk)
        if locked.is_terminal:
            return False
        Document.objects.filter(pk=locked.document_id).update(page_count=meta["page_count"])
        locked.mark_finished(Status.SUCCEEDED)
        locked.save()
    shutil.rmtree(folder, ignore_errors=True)
    record_event(
        locked,
        "Job succeeded",
        {"duration_ms": locked.duration_ms, "page_count": meta["page_count"]},
    )
    logger.info("Job %s succeeded in %s ms", job.pk, locked.duration_ms)
    return True
