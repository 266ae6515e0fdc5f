"""Retention: delete expired uploads and artifacts, and files no row points to.

One run, in this order:

1. Quarantine. An upload still in quarantine (never scanned, or rejected as
   PDF_ENCRYPTED) is deleted QUARANTINE_RETENTION_HOURS after its upload,
   unless a job of its document is queued or running. An infected upload
   is deleted after INFECTED_RETENTION_HOURS. The document becomes DELETED.
2. Artifacts. A file last written longer ago than the tenant's
   `artifact_retention_days` (else ARTIFACT_RETENTION_DAYS) is deleted and
   its row gets `deleted_at`, so a download returns 410 ARTIFACT_GONE.
3. Rows without files. An artifact whose file is missing gets `deleted_at`;
   a document whose current file is missing becomes DELETED.
4. Orphans. A file under uploads/ or artifacts/ that no live row points to,
   and a job's work folder whose job is gone (or ended before the artifact
   cutoff), is deleted once it is ORPHAN_GRACE_MINUTES old. Uploads in
   progress (`.part`) and atomic writes (`.*.tmp`) are younger than that.
5. Folders left empty and older than the grace period are removed.

A row is changed before its file is deleted, so a crash in between leaves an
orphan file for the next run, never a row that points to nothing unmarked.
Document rows are changed under a row lock, which the scan stage also takes
while it moves a file from quarantine to clean. With `dry_run` nothing is
changed and the report lists what would go. Clean uploads stay as long as
their document; only the rules above delete them.
"""

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant

from . import storage
from .models import Artifact, Document, IngestionJob

logger = logging.getLogger(__name__)

UPLOAD_FOLDERS = ("uploads/quarantine", "uploads/clean")
ARTIFACT_FOLDER = "artifacts"
WORK_FOLDER = "work"
ACTIVE_JOB_STATUSES = (IngestionJob.Status.QUEUED, IngestionJob.Status.RUNNING)


@dataclass(frozen=True)
class Deletion:
    """One thing retention deletes or marks, with the ids it concerns.

    `rule` is quarantine, infected, artifact, missing_artifact_file,
    missing_document_file, orphan_file, orphan_work or empty_folder. `path`
    is relative to DATA_ROOT ("" when only a row changes).
    """

    rule: str
    path: str
    size_bytes: int = 0
    ids: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        ids = " ".join(f"{name}={value}" for name, value in self.ids.items())
        parts = [self.rule, self.path or "-", f"{self.size_bytes} bytes"]
        if ids:
            parts.append(ids)
        return " ".join(parts)


@dataclass
class PruneReport:
    dry_run: bool
    deletions: list[Deletion] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for deletion in self.deletions:
            counts[deletion.rule] = counts.get(deletion.rule, 0) + 1
        return counts

    @property
    def bytes_freed(self) -> int:
        return sum(deletion.size_bytes for deletion in self.deletions)


def prune_storage(dry_run: bool = False, now: datetime | None = None) -> PruneReport:
    """Apply every retention rule once, in the order the module docstring lists."""
    pruner = Pruner(now or timezone.now(), dry_run)
    pruner.prune_quarantine()
    pruner.prune_artifacts()
    pruner.mark_rows_without_files()
    pruner.prune_orphan_files()
    pruner.prune_empty_folders()
    report = pruner.report
    logger.info(
        "Retention %s: %s, %s bytes",
        "dry run" if dry_run else "run",
        report.counts() or "nothing to delete",
        report.bytes_freed,
    )
    return report


def file_size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def parse_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


class Pruner:
    def __init__(self, now: datetime, dry_run: bool) -> None:
        self.now = now
        self.dry_run = dry_run
        self.root = storage.data_root().resolve()
        self.report = PruneReport(dry_run=dry_run)
        self.grace_cutoff = (now - timedelta(minutes=settings.ORPHAN_GRACE_MINUTES)).timestamp()
        self._artifact_cutoffs: dict[uuid.UUID, datetime] = {}

    # --- bookkeeping --------------------------------------------------------

    def record(self, deletion: Deletion) -> None:
        self.report.deletions.append(deletion)
        verb = "would delete" if self.dry_run else "deleted"
        logger.info("Retention %s: %s", verb, deletion.describe())

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def unlink(self, path: Path) -> None:
        """Delete a file; one that is already gone counts as deleted."""
        if self.dry_run:
            return
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    def artifact_cutoff(self, tenant_id: uuid.UUID) -> datetime:
        if tenant_id not in self._artifact_cutoffs:
            days = (
                Tenant.objects.filter(pk=tenant_id)
                .values_list("artifact_retention_days", flat=True)
                .first()
            )
            days = days or settings.ARTIFACT_RETENTION_DAYS
            self._artifact_cutoffs[tenant_id] = self.now - timedelta(days=days)
        return self._artifact_cutoffs[tenant_id]

    # --- 1. quarantine ------------------------------------------------------

    def prune_quarantine(self) -> None:
        rules = (
            ("quarantine", Document.Status.UPLOADED, settings.QUARANTINE_RETENTION_HOURS),
            ("infected", Document.Status.INFECTED, settings.INFECTED_RETENTION_HOURS),
        )
        for rule, status, hours in rules:
            cutoff = self.now - timedelta(hours=hours)
            expired = (
                Document.objects.filter(status=status, created_at__lt=cutoff)
                .exclude(storage_relpath_quarantine="")
                .exclude(jobs__status__in=ACTIVE_JOB_STATUSES)
                .values_list("pk", flat=True)
            )
            for document_id in list(expired):
                self.delete_document_file(document_id, status, rule)

    def delete_document_file(self, document_id: uuid.UUID, status: str, rule: str) -> None:
        with transaction.atomic():
            document = Document.objects.select_for_update().filter(pk=document_id).first()
            if document is None or document.status != status:
                return
            if document.jobs.filter(status__in=ACTIVE_JOB_STATUSES).exists():
                return
            path = document.get_quarantine_path()
            deletion = Deletion(
                rule,
                document.storage_relpath_quarantine,
                file_size(path),
                {"document_id": str(document.pk), "tenant_id": str(document.tenant_id)},
            )
            if not self.dry_run:
                document.status = Document.Status.DELETED
                document.save(update_fields=["status", "updated_at"])
                self.unlink(path)
        self.record(deletion)

    # --- 2. artifacts -------------------------------------------------------

    def prune_artifacts(self) -> None:
        for tenant_id, days in Tenant.objects.values_list("pk", "artifact_retention_days"):
            cutoff = self.now - timedelta(days=days or settings.ARTIFACT_RETENTION_DAYS)
            self._artifact_cutoffs[tenant_id] = cutoff
            expired = Artifact.objects.filter(
                tenant_id=tenant_id, deleted_at__isnull=True, updated_at__lt=cutoff
            ).only("pk", "job_id", "tenant_id", "storage_relpath")
            for artifact in expired.iterator(chunk_size=1000):
                self.delete_artifact_file(artifact, "artifact")

    def delete_artifact_file(self, artifact: Artifact, rule: str) -> None:
        path = artifact.get_path()
        deletion = Deletion(
            rule,
            artifact.storage_relpath if path.exists() else "",
            file_size(path),
            {
                "artifact_id": str(artifact.pk),
                "job_id": str(artifact.job_id),
                "tenant_id": str(artifact.tenant_id),
            },
        )
        if not self.dry_run:
            marked = Artifact.objects.filter(pk=artifact.pk, deleted_at__isnull=True).update(
                deleted_at=self.now
            )
            if not marked:
                return
            self.unlink(path)
        self.record(deletion)

    # --- 3. rows without files ----------------------------------------------

    def mark_rows_without_files(self) -> None:
        artifacts = Artifact.objects.filter(deleted_at__isnull=True).only(
            "pk", "job_id", "tenant_id", "storage_relpath"
        )
        for artifact in artifacts.iterator(chunk_size=1000):
            if not artifact.get_path().exists():
                self.delete_artifact_file(artifact, "missing_artifact_file")

        documents = Document.objects.exclude(status=Document.Status.DELETED).only(
            "pk", "status", "storage_relpath_quarantine", "storage_relpath_clean"
        )
        for document in documents.iterator(chunk_size=1000):
            relpath = current_relpath(document)
            if relpath and not storage.resolve(relpath).exists():
                self.mark_document_missing(document.pk)

    def mark_document_missing(self, document_id: uuid.UUID) -> None:
        # Checked again under the row lock: the scan stage moves the file
        # from quarantine to clean and updates the row while holding it.
        with transaction.atomic():
            document = Document.objects.select_for_update().filter(pk=document_id).first()
            if document is None or document.status == Document.Status.DELETED:
                return
            relpath = current_relpath(document)
            if not relpath or storage.resolve(relpath).exists():
                return
            if not self.dry_run:
                document.status = Document.Status.DELETED
                document.save(update_fields=["status", "updated_at"])
        self.record(
            Deletion(
                "missing_document_file",
                "",
                0,
                {"document_id": str(document.pk), "tenant_id": str(document.tenant_id)},
            )
        )

    # --- 4. orphans ---------------------------------------------------------

    def prune_orphan_files(self) -> None:
        for folder in UPLOAD_FOLDERS:
            for tenant_dir, tenant_id in self.tenant_dirs(folder):
                self.prune_unreferenced(tenant_dir, self.document_relpaths(tenant_id))
        for tenant_dir, tenant_id in self.tenant_dirs(ARTIFACT_FOLDER):
            self.prune_unreferenced(tenant_dir, self.artifact_relpaths(tenant_id))
        for tenant_dir, tenant_id in self.tenant_dirs(WORK_FOLDER):
            self.prune_work_dirs(tenant_dir, tenant_id)

    def tenant_dirs(self, folder: str) -> Iterator[tuple[Path, uuid.UUID | None]]:
        base = self.root / folder
        if not base.is_dir():
            return
        for entry in sorted(base.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                yield entry, parse_uuid(entry.name)
            elif self.is_old(entry):
                # A file or link where only tenant folders belong.
                self.delete_orphan(entry)

    def document_relpaths(self, tenant_id: uuid.UUID | None) -> set[str]:
        if tenant_id is None:
            return set()
        rows = (
            Document.objects.filter(tenant_id=tenant_id)
            .exclude(status=Document.Status.DELETED)
            .values_list("storage_relpath_quarantine", "storage_relpath_clean")
        )
        return {relpath for pair in rows for relpath in pair if relpath}

    def artifact_relpaths(self, tenant_id: uuid.UUID | None) -> set[str]:
        if tenant_id is None:
            return set()
        return set(
            Artifact.objects.filter(tenant_id=tenant_id, deleted_at__isnull=True).values_list(
                "storage_relpath", flat=True
            )
        )

    def is_old(self, path: Path) -> bool:
        try:
            return path.lstat().st_mtime < self.grace_cutoff
        except FileNotFoundError:
            return False

    def prune_unreferenced(self, tenant_dir: Path, referenced: set[str]) -> None:
        for dirpath, _dirnames, filenames in os.walk(tenant_dir):
            for name in filenames:
                path = Path(dirpath) / name
                if self.relpath(path) not in referenced and self.is_old(path):
                    self.delete_orphan(path)

    def delete_orphan(self, path: Path) -> None:
        deletion = Deletion("orphan_file", self.relpath(path), file_size(path))
        if not self.dry_run:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                self.unlink(path)
        self.record(deletion)

    def prune_work_dirs(self, tenant_dir: Path, tenant_id: uuid.UUID | None) -> None:
        """Delete a job's work folder once its job is gone or ended before the cutoff.

        A failed job keeps its folder until then, because a retry reuses the
        Docling JSON in it.
        """
        for job_dir in sorted(tenant_dir.iterdir()):
            if not self.is_old(job_dir):
                continue
            job_id = parse_uuid(job_dir.name)
            job = None
            if tenant_id is not None and job_id is not None:
                job = (
                    IngestionJob.objects.filter(pk=job_id, tenant_id=tenant_id)
                    .only("pk", "status", "finished_at", "tenant_id")
                    .first()
                )
            if job is not None and not self.work_dir_expired(job):
                continue
            ids = {"job_id": job_dir.name, "tenant_id": tenant_dir.name}
            size = sum(file_size(path) for path in job_dir.rglob("*"))
            deletion = Deletion("orphan_work", self.relpath(job_dir), size, ids)
            if not self.dry_run:
                if job_dir.is_dir() and not job_dir.is_symlink():
                    shutil.rmtree(job_dir, ignore_errors=True)
                else:
                    self.unlink(job_dir)
            self.record(deletion)

    def work_dir_expired(self, job: IngestionJob) -> bool:
        if not job.is_terminal or job.finished_at is None:
            return False
        return job.finished_at < self.artifact_cutoff(job.tenant_id)

    # --- 5. empty folders ---------------------------------------------------

    def prune_empty_folders(self) -> None:
        for folder in (*UPLOAD_FOLDERS, ARTIFACT_FOLDER, WORK_FOLDER):
            base = self.root / folder
            if not base.is_dir():
                continue
            for dirpath, _dirnames, _filenames in os.walk(base, topdown=False):
                path = Path(dirpath)
                if path == base or not is_empty_dir(path) or not self.is_old(path):
                    continue
                if not self.dry_run:
                    try:
                        path.rmdir()
                    except OSError:
                        # Not empty any more: a writer got there first.
                        continue
                self.record(Deletion("empty_folder", self.relpath(path)))


def current_relpath(document: Document) -> str:
    """Return the path of the document's file for its status ("" when it has none)."""
    if document.status == Document.Status.CLEAN:
        return document.storage_relpath_clean
    return document.storage_relpath_quarantine


def is_empty_dir(path: Path) -> bool:
    try:
        return not any(path.iterdir())
    except OSError:
        return False
