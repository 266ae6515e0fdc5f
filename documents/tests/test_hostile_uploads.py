"""Every hostile file of the shared corpus that is rejected at upload.

Each gets its stable error code and HTTP status, a JSON body without a
traceback or local path, and leaves no file behind. Files that pass the
upload check and fail later in the worker are covered by the pipeline
integration tests.
"""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for, corpus_file
from documents.models import Document

pytestmark = pytest.mark.django_db(transaction=True)


def stored_files(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


@pytest.mark.parametrize(
    ("name", "status", "error_code"),
    [
        ("empty_zero_bytes.pdf", 400, "EMPTY_FILE"),
        ("png_renamed_as.pdf", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_corpus_file_rejected_at_upload(data_root: Path, name: str, status: int, error_code: str) -> None:
    client = client_for(create_api_key("acme").token)
    before = stored_files(data_root)
    data = corpus_file(name).read_bytes()
    response = client.post("/v1/documents", {"file": SimpleUploadedFile(name, data)}, format="multipart")
    assert response.status_code == status
    body = response.json()
    assert body["error_code"] == error_code
    text = response.content.decode()
    assert "Traceback" not in text
    assert str(data_root) not in text
    assert stored_files(data_root) == before
    assert not Document.objects.exists()


def test_download_name_is_safe_for_headers(data_root: Path) -> None:
    from documents.models import Artifact, IngestionJob

    issued = create_api_key("acme")
    client = client_for(issued.token)
    name = 'Ünïcode "quoted"; name.pdf'
    # ingest=false: a queued job would be picked up by a worker that may be
    # running for the integration tests.
    response = client.post(
        "/v1/documents",
        {"file": SimpleUploadedFile(name, b"%PDF-1.4\n%%EOF\n"), "ingest": "false"},
        format="multipart",
    )
    document = Document.objects.get(pk=response.json()["document"]["id"])
    job = IngestionJob.objects.create(
        tenant=document.tenant, document=document, status=IngestionJob.Status.SUCCEEDED
    )
    path = data_root / "artifacts" / str(job.tenant_id) / str(job.id) / "document.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# x")
    artifact = Artifact.objects.create(
        tenant=job.tenant, job=job, kind="markdown",
        storage_relpath=str(path.relative_to(data_root)), checksum_sha256="0" * 64,
        size_bytes=3, content_type="text/markdown; charset=utf-8",
    )
    download = client.get(f"/v1/artifacts/{artifact.id}/download")
    disposition = download["Content-Disposition"]
    assert disposition.startswith("attachment; filename*=utf-8''")
    assert "%C3%9Cn%C3%AFcode" in disposition
    assert '"' not in disposition.split("filename*=", 1)[1]
    assert "\n" not in disposition
    assert "\r" not in disposition
