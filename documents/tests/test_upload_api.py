import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for, corpus_file
from documents.models import Document, IngestionJob

pytestmark = pytest.mark.django_db

MINIMAL_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def upload(client, content: bytes, name: str = "report.pdf", **fields):
    data = {"file": SimpleUploadedFile(name, content, content_type="application/pdf"), **fields}
    return client.post("/v1/documents", data, format="multipart")


def stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.fixture
def client():
    return client_for(create_api_key("acme").token)


def test_upload_stores_file_with_size_and_sha256(client, data_root: Path) -> None:
    response = upload(client, MINIMAL_PDF, ingest="false")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["job"] is None
    document = Document.objects.get(pk=body["document"]["id"])
    assert document.size_bytes == len(MINIMAL_PDF)
    assert document.sha256 == hashlib.sha256(MINIMAL_PDF).hexdigest()
    assert document.status == Document.Status.UPLOADED
    path = document.get_quarantine_path()
    assert path == data_root / "uploads" / "quarantine" / str(document.tenant_id) / f"{document.id}.pdf"
    assert path.read_bytes() == MINIMAL_PDF


def test_upload_creates_queued_job_with_resolved_options(client) -> None:
    options = {"do_ocr": False, "chunking": {"strategy": "hierarchical"}}
    response = upload(client, MINIMAL_PDF, options=json.dumps(options))
    assert response.status_code == 201, response.content
    job = IngestionJob.objects.get(pk=response.json()["job"]["id"])
    assert job.status == IngestionJob.Status.QUEUED
    assert job.options_json["do_ocr"] is False
    assert job.options_json["chunking"] == {
        "strategy": "hierarchical",
        "max_tokens": 256,
        "merge_peers": True,
        "tokenizer": "all-minilm-l6-v2",
    }
    assert job.options_json["exports"] == ["doctags", "markdown", "text"]


def test_upload_accepts_junk_before_pdf_header(client) -> None:
    response = upload(client, corpus_file("header_leading_junk.pdf").read_bytes())
    assert response.status_code == 201, response.content


def test_upload_rejects_empty_file(client, data_root: Path) -> None:
    before = stored_files(data_root)
    response = upload(client, b"")
    assert response.status_code == 400
    assert response.json()["error_code"] == "EMPTY_FILE"
    assert stored_files(data_root) == before


def test_upload_rejects_png_renamed_pdf(client, data_root: Path) -> None:
    before = stored_files(data_root)
    response = upload(client, corpus_file("png_renamed_as.pdf").read_bytes())
    assert response.status_code == 415
    assert response.json()["error_code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert stored_files(data_root) == before
    assert Document.objects.count() == 0


def test_upload_rejects_file_over_limit(client, settings, data_root: Path) -> None:
    settings.UPLOAD_MAX_SIZE_BYTES = 100 * 1024
    settings.UPLOAD_MAX_SIZE_MB = 0
    before = stored_files(data_root)
    response = upload(client, MINIMAL_PDF + b"0" * (300 * 1024))
    assert response.status_code == 413
    assert response.json()["error_code"] == "FILE_TOO_LARGE"
    assert stored_files(data_root) == before
    assert Document.objects.count() == 0


def test_upload_without_file_field(client) -> None:
    response = client.post("/v1/documents", {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error_code"] == "FILE_MISSING"


def test_upload_as_json_is_rejected(client) -> None:
    response = client.post("/v1/documents", {"file": "x"}, format="json")
    assert response.status_code == 415
    assert "error_code" in response.json()


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"unknown_switch": True}, "unknown_switch"),
        ({"do_ocr": "maybe"}, "do_ocr"),
        ({"exports": ["pdf"]}, "exports"),
        ({"chunking": {"strategy": "semantic"}}, "chunking"),
        ({"max_pages": 0}, "max_pages"),
    ],
)
def test_upload_rejects_invalid_options(client, data_root: Path, options: dict, field: str) -> None:
    before = stored_files(data_root)
    response = upload(client, MINIMAL_PDF, options=json.dumps(options))
    assert response.status_code == 400
    body = response.json()
    assert body["error_code"] == "INVALID_OPTIONS"
    assert field in body["message"]
    assert stored_files(data_root) == before


def test_upload_rejects_options_that_are_not_json(client) -> None:
    response = upload(client, MINIMAL_PDF, options="{not json")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_OPTIONS"


def test_filename_is_metadata_only(client, data_root: Path) -> None:
    response = upload(client, MINIMAL_PDF, name="../../etc/pa\x07ss\x1bwd.pdf", ingest="false")
    assert response.status_code == 201
    document = Document.objects.get(pk=response.json()["document"]["id"])
    assert document.original_filename == "passwd.pdf"
    assert document.get_quarantine_path().is_relative_to(data_root)


def test_other_tenant_gets_404(client) -> None:
    response = upload(client, MINIMAL_PDF)
    document_id = response.json()["document"]["id"]
    job_id = response.json()["job"]["id"]
    other = client_for(create_api_key("globex").token)
    assert other.get(f"/v1/documents/{document_id}").status_code == 404
    assert other.get(f"/v1/jobs/{job_id}").status_code == 404
    assert other.post(f"/v1/documents/{document_id}/ingest", {}, format="json").status_code == 404
    assert other.get("/v1/documents").json()["count"] == 0
    assert client.get("/v1/documents").json()["count"] == 1


def test_ingest_creates_second_job(client) -> None:
    document_id = upload(client, MINIMAL_PDF).json()["document"]["id"]
    response = client.post(
        f"/v1/documents/{document_id}/ingest",
        {"options": {"exports": ["markdown"]}},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["job"]["options_json"]["exports"] == ["markdown"]
    assert IngestionJob.objects.filter(document_id=document_id).count() == 2


def test_job_detail_lists_events(client) -> None:
    job_id = upload(client, MINIMAL_PDF).json()["job"]["id"]
    body = client.get(f"/v1/jobs/{job_id}").json()
    assert body["status"] == "QUEUED"
    assert body["stage"] == "SCANNING"
    assert [event["message"] for event in body["events"]] == ["Job queued"]
    assert body["artifacts"] == []
