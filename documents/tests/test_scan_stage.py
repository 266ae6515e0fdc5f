"""The scan stage against real clamd, and its fail-closed path without it.

These run the stage tasks in this process with Celery's eager `apply`, so no
worker is needed; the next stage is not queued because the job ends here.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for, corpus_file
from documents.models import Document, IngestionJob
from documents.tasks import scan_pdf_task

pytestmark = pytest.mark.django_db(transaction=True)


def upload(client, content: bytes) -> dict:
    data = {"file": SimpleUploadedFile("upload.pdf", content, content_type="application/pdf")}
    response = client.post("/v1/documents", data, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def client():
    return client_for(create_api_key("acme").token)


@pytest.fixture
def no_queue(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record tasks the code under test would send, instead of sending them."""
    sent: list = []
    for name, task in (("scan", "scan_pdf_task"), ("convert", "docling_convert_task")):
        monkeypatch.setattr(
            f"documents.tasks.{task}.apply_async",
            lambda args, task_id, queue, name=name: sent.append((name, tuple(args))),
        )
    return sent


def run_scan(job_id: str) -> None:
    """Run the scan task in process as the task id the job expects."""
    task_id = IngestionJob.objects.get(pk=job_id).celery_task_id
    scan_pdf_task.apply(args=[job_id], task_id=task_id)


def test_unreachable_clamd_fails_closed_after_retries(client, settings, no_queue: list) -> None:
    settings.CLAMD_ADDRESS = "unix:///nonexistent/clamd.sock"
    settings.SCAN_MAX_RETRIES = 2
    job_id = upload(client, corpus_file("born_digital_lorem_1p.pdf").read_bytes())["job"]["id"]
    run_scan(job_id)
    job = IngestionJob.objects.get(pk=job_id)
    assert job.status == IngestionJob.Status.FAILED
    assert job.error_code == "SCANNER_UNAVAILABLE"
    retries = job.events.filter(message="clamd unreachable; scan retried")
    assert retries.count() == 2
    assert job.document.status == Document.Status.UPLOADED
    assert job.document.get_quarantine_path().exists()
    assert ("convert", (job_id,)) not in no_queue


def test_clean_file_moves_out_of_quarantine(client, no_queue: list) -> None:
    job_id = upload(client, corpus_file("born_digital_lorem_1p.pdf").read_bytes())["job"]["id"]
    run_scan(job_id)
    job = IngestionJob.objects.get(pk=job_id)
    assert job.status == IngestionJob.Status.RUNNING
    assert job.stage == IngestionJob.Stage.CONVERTING
    assert job.scan_ms is not None
    document = job.document
    assert document.status == Document.Status.CLEAN
    assert document.get_clean_path().exists()
    assert not document.storage_relpath_quarantine
    assert ("convert", (job_id,)) in no_queue


def test_redelivered_scan_task_does_nothing(client, no_queue: list) -> None:
    job_id = upload(client, corpus_file("born_digital_lorem_1p.pdf").read_bytes())["job"]["id"]
    run_scan(job_id)
    run_scan(job_id)
    assert no_queue.count(("convert", (job_id,))) == 1
    assert IngestionJob.objects.get(pk=job_id).stage == IngestionJob.Stage.CONVERTING


def test_eicar_upload_is_quarantined_at_once(client) -> None:
    body = upload(client, corpus_file("eicar.pdf").read_bytes())
    job = IngestionJob.objects.get(pk=body["job"]["id"])
    assert job.status == IngestionJob.Status.QUARANTINED
    assert job.error_code == "VIRUS_FOUND"
    assert job.document.status == Document.Status.INFECTED
    assert job.document.get_quarantine_path().exists()
