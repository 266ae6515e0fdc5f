"""Write many synthetic documents and jobs quickly, for benchmarks of the job list and dashboard.

Rows go in with PostgreSQL's COPY, in batches, one document per job. They
look like a service that has run for `days` days: most jobs SUCCEEDED with
stage timings and page counts, some FAILED, QUARANTINED or CANCELED, and a
few still QUEUED or RUNNING among the newest. No file is written, so
downloads of these rows would return 404 or 410. Every seeded row has
`worker_hostname` (jobs) or `original_filename` (documents) starting with
"seed", so they can be told apart. Use a database of its own.
"""

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, models
from django.utils import timezone

from accounts.models import Tenant

from .models import Document, IngestionJob

SEED_MARK = "seed"
# Terminal statuses and their shares of the seeded jobs; the rest are QUEUED or RUNNING.
STATUS_WEIGHTS = (
    (IngestionJob.Status.SUCCEEDED, 0.90),
    (IngestionJob.Status.FAILED, 0.06),
    (IngestionJob.Status.QUARANTINED, 0.01),
    (IngestionJob.Status.CANCELED, 0.02),
    (IngestionJob.Status.RUNNING, 0.005),
    (IngestionJob.Status.QUEUED, 0.005),
)
FAILURE_CODES = ("CONVERSION_FAILED", "PDF_CORRUPT", "PDF_ENCRYPTED", "TIMEOUT", "PAGE_LIMIT_EXCEEDED")


@dataclass(frozen=True)
class SeedReport:
    tenants: int
    documents: int
    jobs: int


def copy_rows(model: type[models.Model], rows: list[dict[str, Any]]) -> None:
    """COPY rows into the model's table; fields a row leaves out get their Python default."""
    fields = [field for field in model._meta.concrete_fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        # Django's cursor wraps psycopg's, whose copy() streams the rows.
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(
                    [
                        field.get_db_prep_save(
                            row[field.attname] if field.attname in row else field.get_default(), connection
                        )
                        for field in fields
                    ]
                )


def _job_times(rng: random.Random, created: datetime, status: str) -> dict[str, Any]:
    """Return the stage, timing and page fields of a job created at `created` with `status`."""
    queue_ms = rng.randint(10, 5000)
    started = created + timedelta(milliseconds=queue_ms)
    scan_ms = rng.randint(5, 60)
    pages = max(1, int(rng.lognormvariate(1.5, 1.0)))
    if status == IngestionJob.Status.QUEUED:
        return {"stage": IngestionJob.Stage.SCANNING, "heartbeat_at": created}
    if status == IngestionJob.Status.RUNNING:
        return {
            "stage": IngestionJob.Stage.CONVERTING,
            "started_at": started,
            "stage_started_at": started,
            "heartbeat_at": started,
            "scan_ms": scan_ms,
            "pages_total": pages,
            "pages_done": pages // 2,
        }
    if status == IngestionJob.Status.QUARANTINED:
        return {
            "stage": IngestionJob.Stage.SCANNING,
            "started_at": started,
            "finished_at": started + timedelta(milliseconds=scan_ms),
            "duration_ms": scan_ms,
            "scan_ms": scan_ms,
        }

    convert_ms = int(pages * rng.uniform(200, 3000))
    export_ms = rng.randint(10, 300)
    chunk_ms = rng.randint(5, 900)
    duration_ms = scan_ms + convert_ms + export_ms + chunk_ms + rng.randint(20, 200)
    stage = IngestionJob.Stage.FINALIZING
    if status != IngestionJob.Status.SUCCEEDED:
        # FAILED and CANCELED jobs stopped halfway through.
        stage = rng.choice((IngestionJob.Stage.CONVERTING, IngestionJob.Stage.EXPORTING))
        duration_ms //= 2
    return {
        "stage": stage,
        "started_at": started,
        "finished_at": started + timedelta(milliseconds=duration_ms),
        "duration_ms": duration_ms,
        "scan_ms": scan_ms,
        "convert_ms": convert_ms,
        "export_ms": export_ms,
        "chunk_ms": chunk_ms,
        "pages_total": pages,
        "pages_done": pages,
    }


def _rows(
    rng: random.Random, tenant_ids: list[uuid.UUID], count: int, days: int, now: datetime
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    statuses = [status for status, _ in STATUS_WEIGHTS]
    weights = [weight for _, weight in STATUS_WEIGHTS]
    span_seconds = days * 86400
    for index in range(count):
        tenant_id = tenant_ids[index % len(tenant_ids)]
        status = rng.choices(statuses, weights)[0]
        if status in (IngestionJob.Status.QUEUED, IngestionJob.Status.RUNNING):
            created = now - timedelta(seconds=rng.uniform(1, 600))
        else:
            created = now - timedelta(seconds=rng.uniform(600, span_seconds))
        sha256 = hashlib.sha256(f"{SEED_MARK}-{index}-{rng.random()}".encode()).hexdigest()
        document_id = uuid.uuid4()
        document = {
            "id": document_id,
            "created_at": created,
            "updated_at": created,
            "tenant_id": tenant_id,
            "original_filename": f"{SEED_MARK}-{index}.pdf",
            "sha256": sha256,
            "size_bytes": rng.randint(10_000, 20_000_000),
            "storage_relpath_clean": f"uploads/clean/{tenant_id}/{document_id}.pdf",
            "status": Document.Status.CLEAN,
        }
        job = {
            "id": uuid.uuid4(),
            "created_at": created,
            "updated_at": created,
            "queued_at": created,
            "tenant_id": tenant_id,
            "document_id": document_id,
            "status": status,
            "options_json": {"do_ocr": True, "exports": ["markdown", "text", "doctags"]},
            "docling_version": "2.142.1",
            "worker_hostname": f"{SEED_MARK}@bench",
            "dedupe_key": sha256,
            **_job_times(rng, created, status),
        }
        if status == IngestionJob.Status.FAILED:
            job["error_code"] = rng.choice(FAILURE_CODES)
            job["error_message"] = "Seeded failure."
        elif status == IngestionJob.Status.QUARANTINED:
            job["error_code"] = "VIRUS_FOUND"
        elif status == IngestionJob.Status.CANCELED:
            job["error_code"] = "CANCELED"
        if job.get("pages_total"):
            document["page_count"] = job["pages_total"]
        yield document, job


def seed_jobs(
    count: int,
    tenants: int,
    days: int = 90,
    batch_size: int = 50_000,
    random_seed: int = 1,
    progress: Any = None,
) -> SeedReport:
    """Add `count` jobs (and as many documents) spread over `tenants` tenants named seed-NN.

    Existing seed tenants are reused, so calling it again adds rows.
    `progress(done)` is called after each batch.
    """
    rng = random.Random(random_seed + IngestionJob.objects.count())
    tenant_ids = [
        Tenant.objects.get_or_create(name=f"{SEED_MARK}-{number:02d}")[0].id for number in range(tenants)
    ]
    now = timezone.now()
    documents: list[dict[str, Any]] = []
    jobs: list[dict[str, Any]] = []
    done = 0
    for document, job in _rows(rng, tenant_ids, count, days, now):
        documents.append(document)
        jobs.append(job)
        if len(jobs) >= batch_size:
            copy_rows(Document, documents)
            copy_rows(IngestionJob, jobs)
            done += len(jobs)
            documents, jobs = [], []
            if progress:
                progress(done)
    if jobs:
        copy_rows(Document, documents)
        copy_rows(IngestionJob, jobs)
        done += len(jobs)
        if progress:
            progress(done)
    return SeedReport(tenants=len(tenant_ids), documents=done, jobs=done)


def vacuum_analyze() -> None:
    """VACUUM (ANALYZE) the seeded tables, as autovacuum would in time, so plans and index-only scans are realistic."""
    with connection.cursor() as cursor:
        for model in (Document, IngestionJob):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")
