"""A full DATA_ROOT, on a real tmpfs: 507 STORAGE_FULL and no half-written files.

Mounting needs root; without it these tests skip. The load-and-fault run in
bench/ covers the same on a running service.
"""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for
from documents import storage
from documents.models import Artifact, Document, IngestionJob
from documents.pipeline import DOCLING_JSON_NAME, work_dir
from documents.tasks import export_artifacts_task
from documents.tests.factories import PDF_BYTES, make_document

pytestmark = pytest.mark.django_db(transaction=True)

TMPFS_SIZE_MB = 2


def fill(folder: Path, leave_bytes: int = 0) -> None:
    """Write a filler file until the file system has about `leave_bytes` free."""
    stats = os.statvfs(folder)
    remaining = stats.f_bavail * stats.f_frsize - leave_bytes
    block = b"\0" * 65536
    with (folder / "filler").open("ab", buffering=0) as handle:
        while remaining > 0:
            try:
                remaining -= handle.write(block[:remaining])
            except OSError:
                return


def leftovers(root: Path) -> list[str]:
    """List temporary and partial files anywhere under root."""
    names = []
    for path in root.rglob("*"):
        if path.is_file() and (path.name.endswith((".tmp", ".part")) or ".link." in path.name):
            names.append(str(path.relative_to(root)))
    return names


@pytest.fixture
def small_data_root(tmp_path: Path, settings) -> Iterator[Path]:
    """Point DATA_ROOT at a fresh tmpfs of TMPFS_SIZE_MB MiB, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE_MB}m", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    settings.DATA_ROOT = mount_point
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_write_atomic_full_disk_leaves_nothing(small_data_root: Path) -> None:
    target = small_data_root / "artifacts" / "document.md"
    target.parent.mkdir()
    target.write_bytes(b"old")
    with pytest.raises(storage.StorageFull) as raised:
        storage.write_atomic(target, b"x" * (TMPFS_SIZE_MB + 1) * 1024 * 1024)
    assert raised.value.error_code == "STORAGE_FULL"
    assert raised.value.status_code == 507
    assert target.read_bytes() == b"old"
    assert leftovers(small_data_root) == []


def test_upload_to_full_disk_gets_507(small_data_root: Path) -> None:
    client = client_for(create_api_key("acme").token)
    fill(small_data_root)
    content = PDF_BYTES + b"%" + b"x" * 300_000 + b"\n"
    response = client.post(
        "/v1/documents",
        {"file": SimpleUploadedFile("big.pdf", content, content_type="application/pdf")},
        format="multipart",
    )
    assert response.status_code == 507, response.content
    assert response.json()["error_code"] == "STORAGE_FULL"
    assert Document.objects.count() == 0
    assert leftovers(small_data_root) == []
    quarantine = small_data_root / "uploads" / "quarantine"
    assert not quarantine.exists() or not any(path.is_file() for path in quarantine.rglob("*"))


def test_export_on_full_disk_fails_job(small_data_root: Path) -> None:
    from docling_core.types.doc import DocItemLabel, DoclingDocument

    tenant = create_api_key("acme").api_key.tenant
    document = make_document(tenant)
    job = IngestionJob.objects.create(
        tenant=tenant,
        document=document,
        status=IngestionJob.Status.RUNNING,
        stage=IngestionJob.Stage.EXPORTING,
        celery_task_id="export-task",
        options_json={"exports": ["markdown", "text"], "chunking": {"strategy": "none"}},
    )
    docling_document = DoclingDocument(name="report")
    docling_document.add_text(label=DocItemLabel.PARAGRAPH, text="Some text. " * 2000)
    folder = work_dir(job)
    folder.mkdir(parents=True)
    json_bytes = json.dumps(docling_document.export_to_dict()).encode()
    (folder / DOCLING_JSON_NAME).write_bytes(json_bytes)
    # Room for the JSON artifact but not for the Markdown after it, so the
    # stage fails with one artifact already written.
    fill(small_data_root, leave_bytes=len(json_bytes) + 8192)

    export_artifacts_task.apply(args=[str(job.pk)], task_id="export-task")

    job.refresh_from_db()
    assert job.status == IngestionJob.Status.FAILED
    assert job.error_code == "STORAGE_FULL"
    assert not Artifact.objects.filter(job=job).exists()
    assert not folder.exists()
    assert leftovers(small_data_root) == []
    assert document.get_clean_path().read_bytes() == PDF_BYTES
