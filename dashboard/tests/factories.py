"""Job rows with chosen statuses, timings and options, created without the pipeline."""

import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import ApiKey, Tenant
from documents.models import Document, IngestionJob

Status = IngestionJob.Status
Stage = IngestionJob.Stage


def make_job(
    tenant: Tenant,
    *,
    status: str = Status.SUCCEEDED,
    stage: str = Stage.FINALIZING,
    key: ApiKey | None = None,
    finished_at: datetime | None = None,
    started_at: datetime | None = None,
    duration_ms: int | None = None,
    pages: int | None = None,
    size_bytes: int = 1000,
    options: dict[str, Any] | None = None,
    error_code: str = "",
    filename: str = "report.pdf",
    **fields: Any,
) -> IngestionJob:
    """Create a document and one job of it with exactly the given values.

    For a terminal job without started_at, the start is finished_at minus
    duration_ms. Extra keyword arguments are set on the job as they are
    (scan_ms, pages_done, attempt, ...).
    """
    document = Document.objects.create(
        tenant=tenant,
        created_by_key=key,
        original_filename=filename,
        sha256=hashlib.sha256(filename.encode()).hexdigest(),
        size_bytes=size_bytes,
        status=Document.Status.CLEAN,
        page_count=pages,
    )
    if started_at is None and finished_at is not None:
        started_at = finished_at - timedelta(milliseconds=duration_ms or 0)
    return IngestionJob.objects.create(
        tenant=tenant,
        created_by_key=key,
        document=document,
        status=status,
        stage=stage,
        options_json=options if options is not None else {"do_ocr": True, "do_table_structure": False},
        started_at=started_at,
        finished_at=finished_at,
        duration_ms=duration_ms,
        pages_total=pages,
        error_code=error_code,
        error_message=f"Test failure {error_code}" if error_code else "",
        **fields,
    )


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)
