"""Domain actions on documents and jobs, called by views, tasks and commands."""

import hashlib
import json
import logging
import time
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from core.errors import ServiceError
from core.logging import current_request_id

from . import storage
from .jobs import cancel_job, compute_dedupe_key, enqueue_stage, record_event, retry_job
from .models import Document, IdempotencyRecord, IngestionJob, JobEvent
from .uploads import HEAD_BYTES, StoredUpload

__all__ = ["cancel_job", "create_document", "create_job", "record_event", "retry_job"]

logger = logging.getLogger(__name__)

PDF_MAGIC = b"%PDF-"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MAX_FILENAME_LENGTH = 255
# GET /v1/jobs/{id}?wait=N: the longest hold, and how often the held request
# reads the job's status (one primary-key query each time).
MAX_JOB_WAIT_SECONDS = 60
JOB_WAIT_CHECK_SECONDS = 0.05


def clean_filename(name: str) -> str:
    """Keep a client's file name as metadata only: no path, no control characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    return name.strip()[:MAX_FILENAME_LENGTH]


def new_document_id() -> uuid.UUID:
    return uuid.uuid4()


def partial_upload_path(tenant: Tenant, document_id: uuid.UUID) -> Path:
    final = storage.resolve(storage.quarantine_relpath(tenant.id, document_id))
    return final.with_name(f".{final.name}.part")


def check_pdf_bytes(upload: StoredUpload) -> None:
    """Check the stored bytes, not the client's name or header, for a PDF.

    Readers accept `%PDF-` anywhere in the first kilobyte (some files start
    with junk), so the check does too.
    """
    if upload.size == 0:
        raise ServiceError(
            "The uploaded file is empty (0 bytes). Send a PDF file.",
            error_code="EMPTY_FILE",
        )
    if PDF_MAGIC not in upload.head[:HEAD_BYTES]:
        raise ServiceError(
            "The uploaded file is not a PDF: no '%PDF-' header in its first "
            f"{HEAD_BYTES} bytes. Only PDF files are accepted.",
            error_code="UNSUPPORTED_MEDIA_TYPE",
            status_code=415,
        )


def create_document(
    api_key: ApiKey, document_id: uuid.UUID, upload: StoredUpload
) -> Document:
    """Validate a streamed upload, move it to its quarantine path, store the row.

    On any failure the file is removed, so no file is left without a row.
    """
    check_pdf_bytes(upload)
    return _store_document(api_key, document_id, upload, Document.Status.UPLOADED)


def quarantine_infected_upload(
    api_key: ApiKey, document_id: uuid.UUID, upload: StoredUpload
) -> tuple[Document, IngestionJob] | None:
    """Scan a file that failed the PDF check; keep it only if it is infected.

    Malware is rarely a valid PDF, and a rejected upload leaves no record.
    Scanning it here means an infected upload is always stored in
    quarantine and shows up as a QUARANTINED job, whatever its type. When
    clamd is unreachable the file is simply rejected as not a PDF.
    """
    from core.engines import scanner
    from scanning import ScanFailed, ScannerUnavailable

    try:
        result = scanner().scan_file(upload.path)
    except (ScannerUnavailable, ScanFailed) as exc:
        logger.warning("Could not scan rejected upload %s: %s", document_id, exc)
        return None
    if result.clean:
        return None
    document = _store_document(api_key, document_id, upload, Document.Status.INFECTED)
    now = timezone.now()
    job = IngestionJob.objects.create(
        tenant=document.tenant,
        created_by_key=api_key,
        document=document,
        status=IngestionJob.Status.QUARANTINED,
        stage=IngestionJob.Stage.SCANNING,
        options_json={},
        max_retries=0,
        started_at=now,
        scan_ms=result.elapsed_ms,
        request_id=current_request_id(),
    )
    job.mark_finished(
        IngestionJob.Status.QUARANTINED,
        error_code="VIRUS_FOUND",
        error_message=(
            f"The virus scanner found {result.signature} in the file; it will not be converted."
        ),
        error_details={"signature": result.signature},
    )
    job.save()
    record_event(
        job,
        "Upload quarantined: virus found",
        {"signature": result.signature},
        level=JobEvent.Level.WARNING,
    )
    logger.warning("Upload %s quarantined: %s", document.id, result.signature)
    return document, job


def _store_document(
    api_key: ApiKey, document_id: uuid.UUID, upload: StoredUpload, status: str
) -> Document:
    tenant = api_key.tenant
    relpath = storage.quarantine_relpath(tenant.id, document_id)
    final_path = storage.resolve(relpath)
    try:
        storage.move_atomic(upload.path, final_path)
        return Document.objects.create(
            id=document_id,
            tenant=tenant,
            created_by_key=api_key,
            original_filename=clean_filename(upload.name or ""),
            sha256=upload.sha256,
            mime_type="application/pdf" if status == Document.Status.UPLOADED else "application/octet-stream",
            size_bytes=upload.size,
            storage_relpath_quarantine=relpath,
            status=status,
        )
    except BaseException:
        upload.discard()
        final_path.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class AcceptedUpload:
    document: Document
    job: IngestionJob | None
    replayed: bool = False


def accept_upload(
    api_key: ApiKey,
    document_id: uuid.UUID,
    upload: StoredUpload,
    options: dict[str, Any],
    *,
    ingest: bool,
    idempotency_key: str | None,
) -> AcceptedUpload:
    """Store an upload as a document and queue its job, or replay an earlier one.

    With an idempotency key, a repeat of the same request (same file bytes,
    file name, options and ingest flag) returns the first request's document
    and job and keeps nothing of the repeat; the same key with another
    request is rejected.
    """
    request_hash = ""
    if idempotency_key is not None:
        request_hash = hashlib.sha256(
            json.dumps(
                [upload.sha256, clean_filename(upload.name or ""), options, ingest], sort_keys=True
            ).encode()
        ).hexdigest()
        replay = _replay(api_key, idempotency_key, request_hash)
        if replay is not None:
            upload.discard()
            return replay
    try:
        with transaction.atomic():
            try:
                document = create_document(api_key, document_id, upload)
            except ServiceError as exc:
                if exc.error_code != "UNSUPPORTED_MEDIA_TYPE":
                    raise
                quarantined = quarantine_infected_upload(api_key, document_id, upload)
                if quarantined is None:
                    raise
                return AcceptedUpload(*quarantined)
            job = create_job(document, api_key, options) if ingest else None
            if idempotency_key is not None:
                IdempotencyRecord.objects.create(
                    tenant=api_key.tenant,
                    key=idempotency_key,
                    request_hash=request_hash,
                    document=document,
                    job=job,
                )
    except IntegrityError:
        # A concurrent request with the same key won the race; its row
        # rolled ours back, so remove our file and replay its response.
        storage.resolve(storage.quarantine_relpath(api_key.tenant_id, document_id)).unlink(
            missing_ok=True
        )
        replay = _replay(api_key, idempotency_key or "", request_hash)
        if replay is None:
            raise
        return replay
    logger.info("Document %s uploaded (%s bytes)", document.id, document.size_bytes)
    return AcceptedUpload(document, job)


def _replay(api_key: ApiKey, key: str, request_hash: str) -> AcceptedUpload | None:
    record = (
        IdempotencyRecord.objects.select_related("document", "job")
        .filter(tenant_id=api_key.tenant_id, key=key)
        .first()
    )
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise ServiceError(
            "This Idempotency-Key was already used with a different request. "
            "Use a new key for a new upload.",
            error_code="IDEMPOTENCY_KEY_REUSED",
            status_code=422,
        )
    return AcceptedUpload(record.document, record.job, replayed=True)


def create_job(document: Document, api_key: ApiKey, options: dict[str, Any]) -> IngestionJob:
    """Create a QUEUED job and send its first task once the row is committed."""
    if document.status == Document.Status.DELETED:
        raise ServiceError(
            "The document was deleted; upload it again.",
            error_code="DOCUMENT_DELETED",
            status_code=409,
        )
    job = IngestionJob.objects.create(
        tenant=document.tenant,
        created_by_key=api_key,
        document=document,
        options_json=options,
        max_retries=settings.JOB_MAX_RETRIES,
        request_id=current_request_id(),
        dedupe_key=compute_dedupe_key(document.sha256, options),
    )
    record_event(job, "Job queued", {"options": options})
    enqueue_stage(job, IngestionJob.Stage.SCANNING)
    return job


def wait_for_job_end(job_id: uuid.UUID, seconds: float) -> None:
    """Return once the job is in a terminal status, or after `seconds`.

    A client that sends `?wait=N` learns that its job finished within
    JOB_WAIT_CHECK_SECONDS, instead of within its own polling interval, and
    costs one small query per check instead of a full job body per poll.
    """
    deadline = time.monotonic() + seconds
    terminal = IngestionJob.TERMINAL_STATUSES
    while True:
        status = IngestionJob.objects.filter(pk=job_id).values_list("status", flat=True).first()
        if status is None or status in terminal:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(JOB_WAIT_CHECK_SECONDS, remaining))
