"""The whole job on real components: API, PostgreSQL, Redis, clamd, a Celery
worker and Docling. Each test uploads through the API and polls the job."""

import hashlib
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for, corpus_file, wait_for_job
from documents.models import Artifact, Document

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

ALL_KINDS = {"docling_json", "markdown", "text", "doctags", "chunks_json"}
TEXT_OPTIONS = {"do_ocr": False}


@pytest.fixture
def client():
    return client_for(create_api_key("acme").token)


def upload(client, path: Path, options: dict | None = None) -> dict:
    data = {"file": SimpleUploadedFile(path.name, path.read_bytes(), content_type="application/pdf")}
    if options is not None:
        data["options"] = json.dumps(options)
    response = client.post("/v1/documents", data, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


def convert(client, name: str, options: dict | None = None) -> dict:
    body = upload(client, corpus_file(name), options)
    return wait_for_job(client, body["job"]["id"])


def download(client, artifact: dict) -> bytes:
    response = client.get(artifact["download_url"])
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def artifacts_by_kind(job: dict) -> dict[str, dict]:
    return {artifact["kind"]: artifact for artifact in job["artifacts"]}


def test_born_digital_pdf_gives_all_artifacts(client) -> None:
    job = convert(client, "born_digital_lorem_1p.pdf")
    assert job["status"] == "SUCCEEDED", job
    artifacts = artifacts_by_kind(job)
    assert set(artifacts) == ALL_KINDS
    markdown = download(client, artifacts["markdown"]).decode()
    assert "Lorem ipsum" in markdown
    for artifact in artifacts.values():
        data = download(client, artifact)
        assert hashlib.sha256(data).hexdigest() == artifact["checksum_sha256"]
        assert len(data) == artifact["size_bytes"]
    chunks = json.loads(download(client, artifacts["chunks_json"]))
    assert chunks["strategy"] == "hybrid"
    first = chunks["chunks"][0]
    assert set(first) == {"chunk_id", "text", "context_text", "metadata"}
    assert first["metadata"]["pages"] == [1]
    document = Document.objects.get(pk=job["document_id"])
    assert document.status == Document.Status.CLEAN
    assert document.page_count == 1
    assert not document.storage_relpath_quarantine
    assert document.get_clean_path().exists()


def test_job_records_timings_and_engine(client) -> None:
    job = convert(client, "born_digital_lorem_1p.pdf", TEXT_OPTIONS)
    assert job["status"] == "SUCCEEDED", job
    stages = [job[field] for field in ("scan_ms", "convert_ms", "export_ms", "chunk_ms")]
    assert all(ms is not None and ms >= 0 for ms in stages)
    assert job["duration_ms"] >= sum(stages)
    assert job["started_at"] <= job["finished_at"]
    assert job["docling_version"] == job["options_json"]["engine"]["docling_version"]
    engine = job["options_json"]["engine"]
    assert engine["layout_engine"] in {"cdla", "heron"}
    assert job["options_json"]["signature_set"] in {"official", "test-only"}
    assert job["worker_hostname"].startswith("test-worker@")
    messages = [event["message"] for event in job["events"]]
    assert "Converting started" in messages
    assert messages[-1] == "Job succeeded"


def test_download_sets_type_and_safe_filename(client) -> None:
    job = convert(client, "born_digital_lorem_1p.pdf", TEXT_OPTIONS)
    markdown = artifacts_by_kind(job)["markdown"]
    response = client.get(markdown["download_url"])
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="born_digital_lorem_1p.md"'


def test_redbook_with_tables_converts(client) -> None:
    job = convert(client, "ibm_redbook_18p_tables.pdf", TEXT_OPTIONS)
    assert job["status"] == "SUCCEEDED", job
    assert set(artifacts_by_kind(job)) == ALL_KINDS
    assert Document.objects.get(pk=job["document_id"]).page_count == 18
    markdown = download(client, artifacts_by_kind(job)["markdown"]).decode()
    assert len(markdown) > 5000


def test_scanned_pdf_is_ocred(client) -> None:
    job = convert(client, "scan_skewed.pdf")
    assert job["status"] == "SUCCEEDED", job
    text = download(client, artifacts_by_kind(job)["text"]).decode()
    words = [word for word in text.split() if word.isalpha() and len(word) > 3]
    assert len(words) > 50, text[:500]
    assert job["options_json"]["engine"]["ocr_engine"] == "tesseract"


def test_same_pdf_twice_gives_identical_artifacts(client) -> None:
    first = convert(client, "born_digital_lorem_1p.pdf", TEXT_OPTIONS)
    # force skips the reuse of the first job's artifacts, so Docling runs again.
    second = convert(client, "born_digital_lorem_1p.pdf", {**TEXT_OPTIONS, "force": True})
    assert second["reused_from"] is None
    assert second["convert_ms"] > 0
    first_sums = {kind: a["checksum_sha256"] for kind, a in artifacts_by_kind(first).items()}
    second_sums = {kind: a["checksum_sha256"] for kind, a in artifacts_by_kind(second).items()}
    assert first_sums == second_sums


def test_eicar_is_quarantined_without_artifacts(client) -> None:
    body = upload(client, corpus_file("eicar.pdf"))
    job = wait_for_job(client, body["job"]["id"])
    assert job["status"] == "QUARANTINED"
    assert job["error_code"] == "VIRUS_FOUND"
    assert "EICAR" in job["error_details_json"]["signature"].upper()
    assert job["artifacts"] == []
    assert Document.objects.get(pk=job["document_id"]).status == Document.Status.INFECTED
    assert not Artifact.objects.filter(job_id=job["id"]).exists()


def test_eicar_inside_valid_pdf_is_quarantined_by_worker(client, tmp_path: Path) -> None:
    # A PDF passes the upload check, so here the worker's scan is the gate.
    eicar = corpus_file("eicar.pdf").read_bytes()
    pdf = tmp_path / "eicar_payload.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%" + eicar + b"\n" + corpus_file("born_digital_lorem_1p.pdf").read_bytes())
    job = wait_for_job(client, upload(client, pdf)["job"]["id"])
    assert job["status"] == "QUARANTINED", job
    assert job["stage"] == "SCANNING"
    assert job["error_code"] == "VIRUS_FOUND"
    assert job["artifacts"] == []
    document = Document.objects.get(pk=job["document_id"])
    assert document.status == Document.Status.INFECTED
    assert document.get_quarantine_path().exists()


def test_password_pdf_fails_as_encrypted(client) -> None:
    # clamd flags it (Heuristics.Encrypted.PDF) before Docling would.
    job = convert(client, "encrypted_user_password_rc4.pdf", TEXT_OPTIONS)
    assert job["status"] == "FAILED", job
    assert job["error_code"] == "PDF_ENCRYPTED"
    assert job["stage"] == "SCANNING"
    assert job["artifacts"] == []
    document = Document.objects.get(pk=job["document_id"])
    assert document.status == Document.Status.UPLOADED
    assert document.get_quarantine_path().exists()


@pytest.mark.parametrize(
    ("name", "error_code"),
    [
        ("truncated_half_latex_two_column.pdf", "PDF_CORRUPT"),
    ],
)
def test_bad_pdf_fails_with_stable_code(client, name: str, error_code: str) -> None:
    job = convert(client, name, TEXT_OPTIONS)
    assert job["status"] == "FAILED", job
    assert job["error_code"] == error_code
    assert job["stage"] == "CONVERTING"
    assert job["error_message"]
    assert "/" not in job["error_message"], "error messages must not carry local paths"
    assert job["artifacts"] == []


@pytest.mark.parametrize(
    "name",
    [
        "encrypted_owner_only_aes128.pdf",
        "header_leading_junk.pdf",
        "broken_xref_keyword_missing.pdf",
        "corrupt_zlib_stream_zen.pdf",
        "empty_page_no_contents.pdf",
    ],
)
def test_damaged_but_readable_pdf_converts(client, name: str) -> None:
    job = convert(client, name, TEXT_OPTIONS)
    assert job["status"] == "SUCCEEDED", job
    assert set(artifacts_by_kind(job)) == ALL_KINDS


def test_page_limit_names_count_and_limit(client) -> None:
    job = convert(client, "ibm_redbook_18p_tables.pdf", {"do_ocr": False, "max_pages": 5})
    assert job["status"] == "FAILED", job
    assert job["error_code"] == "PAGE_LIMIT_EXCEEDED"
    assert "18" in job["error_message"]
    assert "5" in job["error_message"]


def test_worker_survives_bad_files(client) -> None:
    for name in ("encrypted_user_password_rc4.pdf", "truncated_half_latex_two_column.pdf"):
        convert(client, name, TEXT_OPTIONS)
    job = convert(client, "born_digital_lorem_1p.pdf", TEXT_OPTIONS)
    assert job["status"] == "SUCCEEDED", job
