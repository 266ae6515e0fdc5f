"""Documents, their ingestion jobs, the artifacts jobs produce and job events."""

from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from core.models import BaseModel

from . import storage


class Document(BaseModel):
    """An uploaded PDF.

    Status moves UPLOADED → CLEAN or INFECTED after the scan; DELETED once
    its files are removed. The file sits in quarantine until the scan says
    it is clean, then moves to the clean folder.
    """

    class Status(models.TextChoices):
        UPLOADED = "UPLOADED"
        CLEAN = "CLEAN"
        INFECTED = "INFECTED"
        DELETED = "DELETED"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="documents")
    created_by_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    original_filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True)
    mime_type = models.CharField(max_length=100, default="application/pdf")
    size_bytes = models.BigIntegerField()
    storage_relpath_quarantine = models.CharField(max_length=500, blank=True)
    storage_relpath_clean = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UPLOADED)
    page_count = models.PositiveIntegerField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="document_tenant_created"),
            models.Index(fields=["tenant", "sha256"], name="document_tenant_sha256"),
            models.Index(fields=["tenant", "status"], name="document_tenant_status"),
        ]

    def __str__(self) -> str:
        return self.original_filename or str(self.id)

    def get_quarantine_path(self) -> Path:
        return storage.resolve(self.storage_relpath_quarantine)

    def get_clean_path(self) -> Path:
        return storage.resolve(self.storage_relpath_clean)


class IngestionJob(BaseModel):
    """One conversion of a document with one set of options.

    Status: QUEUED → RUNNING → SUCCEEDED, FAILED or CANCELED; QUARANTINED
    when the scan finds a virus. Stage follows the pipeline: SCANNING →
    CONVERTING → EXPORTING → CHUNKING → FINALIZING. The row, not the broker,
    is the source of truth for status, stage and timings.
    """

    class Status(models.TextChoices):
        QUEUED = "QUEUED"
        RUNNING = "RUNNING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"
        CANCELED = "CANCELED"
        QUARANTINED = "QUARANTINED"

    class Stage(models.TextChoices):
        SCANNING = "SCANNING"
        CONVERTING = "CONVERTING"
        EXPORTING = "EXPORTING"
        CHUNKING = "CHUNKING"
        FINALIZING = "FINALIZING"

    TERMINAL_STATUSES = (
        Status.SUCCEEDED,
        Status.FAILED,
        Status.CANCELED,
        Status.QUARANTINED,
    )
    STAGE_ORDER = (
        Stage.SCANNING,
        Stage.CONVERTING,
        Stage.EXPORTING,
        Stage.CHUNKING,
        Stage.FINALIZING,
    )

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="jobs")
    created_by_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.SCANNING)
    options_json = models.JSONField(default=dict)
    docling_version = models.CharField(max_length=32, blank=True)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    scan_ms = models.PositiveBigIntegerField(null=True, blank=True)
    convert_ms = models.PositiveBigIntegerField(null=True, blank=True)
    export_ms = models.PositiveBigIntegerField(null=True, blank=True)
    chunk_ms = models.PositiveBigIntegerField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    max_retries = models.PositiveIntegerField(default=3)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_details_json = models.JSONField(default=dict, blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    celery_task_id = models.CharField(max_length=255, blank=True)
    # X-Request-ID of the API request that created the job, carried into
    # every worker log line of the job.
    request_id = models.CharField(max_length=64, blank=True)
    # celery_task_id is the one task allowed to run the current stage: a
    # stale copy of a task (a redelivery after the reaper requeued the
    # stage) has another id and exits without doing anything.
    # heartbeat_at is set when a stage is queued and every few seconds while
    # it runs; the reaper requeues jobs whose heartbeat stopped.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    requeue_count = models.PositiveIntegerField(default=0)
    # Conversions of this job whose process died (a crash or a resource
    # cap), counted here and not in the broker, so a poison PDF stops after
    # CONVERSION_MAX_CRASHES while a worker lost for other reasons is still
    # requeued.
    conversion_crashes = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(null=True, blank=True)
    pages_total = models.PositiveIntegerField(null=True, blank=True)
    # SHA-256 of the document's bytes, the resolved options and the Docling
    # versions: equal keys give equal artifacts.
    dedupe_key = models.CharField(max_length=64, blank=True)
    reused_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta(BaseModel.Meta):
        indexes = [
            models.Index(fields=["tenant", "dedupe_key", "status"], name="job_tenant_dedupe"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
            models.Index(fields=["tenant", "-created_at"], name="job_tenant_created"),
            models.Index(fields=["tenant", "status", "-created_at"], name="job_tenant_status"),
            models.Index(fields=["tenant", "stage"], name="job_tenant_stage"),
            models.Index(fields=["status", "started_at"], name="job_status_started"),
            models.Index(fields=["document", "-created_at"], name="job_document_created"),
            # The dashboard and the usage report select jobs by finish time,
            # per tenant or (for staff) across all tenants.
            models.Index(fields=["tenant", "finished_at"], name="job_tenant_finished"),
            models.Index(fields=["finished_at"], name="job_finished"),
        ]

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in self.TERMINAL_STATUSES

    def mark_started(self, hostname: str = "", task_id: str = "") -> None:
        """Move a QUEUED job to RUNNING; keep the first start time on re-runs."""
        self.status = self.Status.RUNNING
        if self.started_at is None:
            self.started_at = timezone.now()
        if hostname:
            self.worker_hostname = hostname
        if task_id:
            self.celery_task_id = task_id

    def mark_finished(
        self,
        status: str,
        error_code: str = "",
        error_message: str = "",
        error_details: dict | None = None,
    ) -> None:
        """Set a terminal status, the error fields and the timings."""
        if status not in self.TERMINAL_STATUSES:
            raise ValueError(f"{status} is not a terminal job status.")
        self.status = status
        self.finished_at = timezone.now()
        self.error_code = error_code
        self.error_message = error_message
        self.error_details_json = error_details or {}
        self.recompute_durations()

    def recompute_durations(self) -> None:
        """Set duration_ms from the wall clock; it covers queue gaps between stages.

        So duration_ms is never less than the sum of the stage times.
        """
        if self.started_at is None or self.finished_at is None:
            return
        wall_ms = int((self.finished_at - self.started_at).total_seconds() * 1000)
        stage_sum = sum(
            ms or 0 for ms in (self.scan_ms, self.convert_ms, self.export_ms, self.chunk_ms)
        )
        self.duration_ms = max(wall_ms, stage_sum)


class IdempotencyRecord(BaseModel):
    """The result of an upload sent with an `Idempotency-Key` header.

    A repeat of the same key with the same body returns the same document
    and job; the same key with another body is rejected.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(
        "IngestionJob", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta(BaseModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_tenant_key"),
        ]


class Artifact(BaseModel):
    """A file a job produced, stored under artifacts/<tenant_id>/<job_id>/."""

    class Kind(models.TextChoices):
        DOCLING_JSON = "docling_json"
        MARKDOWN = "markdown"
        TEXT = "text"
        DOCTAGS = "doctags"
        CHUNKS_JSON = "chunks_json"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="artifacts")
    created_by_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(IngestionJob, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    storage_relpath = models.CharField(max_length=500)
    checksum_sha256 = models.CharField(max_length=64)
    size_bytes = models.BigIntegerField()
    content_type = models.CharField(max_length=100)
    # Set when retention deleted the file, or found it missing; the row stays
    # so that a download returns 410 ARTIFACT_GONE instead of 404.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta(BaseModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "job", "kind"], name="artifact_unique_tenant_job_kind"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="artifact_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of job {self.job_id}"

    def get_path(self) -> Path:
        return storage.resolve(self.storage_relpath)


class JobEvent(BaseModel):
    """A line in a job's history: stage starts and ends, retries and errors."""

    class Level(models.TextChoices):
        INFO = "INFO"
        WARNING = "WARNING"
        ERROR = "ERROR"

    job = models.ForeignKey(IngestionJob, on_delete=models.CASCADE, related_name="events")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.CharField(max_length=500)
    payload_json = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField(default=timezone.now)

    class Meta(BaseModel.Meta):
        ordering = ("timestamp",)
        indexes = [models.Index(fields=["job", "timestamp"], name="jobevent_job_timestamp")]

    def __str__(self) -> str:
        return f"{self.level} {self.message}"
