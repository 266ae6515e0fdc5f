"""Rows and files for documents tests, built without the API or the pipeline."""

import hashlib
import os
from datetime import datetime
from pathlib import Path

from accounts.models import Tenant
from documents import storage
from documents.models import Artifact, Document, IngestionJob

PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def set_mtime(path: Path, when: datetime) -> None:
    timestamp = when.timestamp()
    os.utime(path, (timestamp, timestamp))


def make_tenant(name: str = "acme", artifact_retention_days: int | None = None) -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(name=name)
    if tenant.artifact_retention_days != artifact_retention_days:
        tenant.artifact_retention_days = artifact_retention_days
        tenant.save(update_fields=["artifact_retention_days"])
    return tenant


def make_document(
    tenant: Tenant,
    status: str = Document.Status.CLEAN,
    created_at: datetime | None = None,
    with_file: bool = True,
) -> Document:
    """Create a document whose file sits in quarantine (UPLOADED, INFECTED) or clean."""
    document = Document(
        tenant=tenant,
        original_filename="report.pdf",
        sha256=hashlib.sha256(PDF_BYTES).hexdigest(),
        size_bytes=len(PDF_BYTES),
        status=status,
    )
    if status == Document.Status.CLEAN:
        document.storage_relpath_clean = storage.clean_relpath(tenant.id, document.id)
        relpath = document.storage_relpath_clean
    else:
        document.storage_relpath_quarantine = storage.quarantine_relpath(tenant.id, document.id)
        relpath = document.storage_relpath_quarantine
    document.save()
    if created_at is not None:
        Document.objects.filter(pk=document.pk).update(created_at=created_at)
        document.refresh_from_db()
    if with_file:
        path = storage.resolve(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(PDF_BYTES)
        if created_at is not None:
            set_mtime(path, created_at)
    return document


def make_job(
    document: Document,
    status: str = IngestionJob.Status.SUCCEEDED,
    request_id: str = "",
) -> IngestionJob:
    return IngestionJob.objects.create(
        tenant=document.tenant, document=document, status=status, request_id=request_id
    )


def make_artifact(
    job: IngestionJob,
    kind: str = Artifact.Kind.MARKDOWN,
    data: bytes = b"# Title\n\nSome text.\n",
    created_at: datetime | None = None,
    with_file: bool = True,
) -> Artifact:
    """Create an artifact row and, unless with_file is False, its file."""
    filename = {
        Artifact.Kind.DOCLING_JSON: "document.json",
        Artifact.Kind.MARKDOWN: "document.md",
        Artifact.Kind.TEXT: "document.txt",
        Artifact.Kind.DOCTAGS: "document.doctags.txt",
        Artifact.Kind.CHUNKS_JSON: "chunks.json",
    }[kind]
    relpath = f"{storage.artifact_dir_relpath(job.tenant_id, job.id)}/{filename}"
    if with_file:
        path = storage.resolve(relpath)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if created_at is not None:
            set_mtime(path, created_at)
    artifact = Artifact.objects.create(
        tenant=job.tenant,
        job=job,
        kind=kind,
        storage_relpath=relpath,
        checksum_sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        content_type="text/markdown; charset=utf-8",
    )
    if created_at is not None:
        Artifact.objects.filter(pk=artifact.pk).update(created_at=created_at, updated_at=created_at)
        artifact.refresh_from_db()
    return artifact
