"""Cancel, retry, list and idempotent upload through the API, without a worker.

Tasks are never sent here: the test transaction is rolled back, so the
on-commit hooks that would queue them never run.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from accounts.keys import create_api_key
from conftest import client_for
from documents.models import Document, IdempotencyRecord, IngestionJob

pytestmark = pytest.mark.django_db

MINIMAL_PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def client():
    return client_for(create_api_key("acme").token)


def upload(client, content: bytes = MINIMAL_PDF, name: str = "a.pdf", **headers):
    data = {"file": SimpleUploadedFile(name, content)}
    return client.post("/v1/documents", data, format="multipart", **headers)


def new_job(client) -> IngestionJob:
    response = upload(client)
    assert response.status_code == 201, response.content
    return IngestionJob.objects.get(pk=response.json()["job"]["id"])


def test_cancel_queued_job(client) -> None:
    job = new_job(client)
    response = client.post(f"/v1/jobs/{job.id}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "CANCELED"
    job.refresh_from_db()
    assert job.status == IngestionJob.Status.CANCELED
    assert job.finished_at is not None


def test_cancel_finished_job_gives_409(client) -> None:
    job = new_job(client)
    IngestionJob.objects.filter(pk=job.pk).update(status=IngestionJob.Status.SUCCEEDED)
    response = client.post(f"/v1/jobs/{job.id}/cancel")
    assert response.status_code == 409
    assert response.json()["error_code"] == "JOB_NOT_CANCELABLE"


def test_retry_needs_failed_or_canceled_job(client) -> None:
    job = new_job(client)
    response = client.post(f"/v1/jobs/{job.id}/retry")
    assert response.status_code == 409
    assert response.json()["error_code"] == "JOB_NOT_RETRYABLE"


def test_retry_counts_attempts_up_to_limit(client) -> None:
    job = new_job(client)
    IngestionJob.objects.filter(pk=job.pk).update(
        status=IngestionJob.Status.FAILED, max_retries=1, error_code="SCANNER_UNAVAILABLE"
    )
    response = client.post(f"/v1/jobs/{job.id}/retry")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "QUEUED"
    assert body["attempt"] == 2
    assert body["error_code"] == ""
    assert body["stage"] == "SCANNING"

    IngestionJob.objects.filter(pk=job.pk).update(status=IngestionJob.Status.FAILED)
    response = client.post(f"/v1/jobs/{job.id}/retry")
    assert response.status_code == 409
    assert response.json()["error_code"] == "RETRY_LIMIT_REACHED"


def test_retry_of_clean_document_restarts_at_conversion(client) -> None:
    job = new_job(client)
    Document.objects.filter(pk=job.document_id).update(status=Document.Status.CLEAN)
    IngestionJob.objects.filter(pk=job.pk).update(
        status=IngestionJob.Status.FAILED, stage=IngestionJob.Stage.CHUNKING
    )
    # No Docling JSON in the work folder, so conversion runs again.
    body = client.post(f"/v1/jobs/{job.id}/retry").json()
    assert body["stage"] == "CONVERTING"


def test_job_actions_need_jobs_write_scope() -> None:
    issued = create_api_key("acme", scopes=["documents:write", "jobs:read"])
    client = client_for(issued.token)
    job = new_job(client)
    response = client.post(f"/v1/jobs/{job.id}/cancel")
    assert response.status_code == 403
    assert response.json()["details"]["scope"] == "jobs:write"


def test_job_list_filters_and_pages(client) -> None:
    jobs = [new_job(client) for _ in range(5)]
    IngestionJob.objects.filter(pk=jobs[0].pk).update(status=IngestionJob.Status.FAILED)

    body = client.get("/v1/jobs?page_size=2").json()
    assert len(body["results"]) == 2
    assert body["results"][0]["id"] == str(jobs[-1].id)
    seen = [row["id"] for row in body["results"]]
    while body["next"]:
        body = client.get(body["next"]).json()
        seen += [row["id"] for row in body["results"]]
    assert sorted(seen) == sorted(str(job.id) for job in jobs)

    failed = client.get("/v1/jobs?status=FAILED").json()["results"]
    assert [row["id"] for row in failed] == [str(jobs[0].id)]
    by_document = client.get(f"/v1/jobs?document_id={jobs[1].document_id}").json()["results"]
    assert [row["id"] for row in by_document] == [str(jobs[1].id)]
    future = (timezone.now() + timezone.timedelta(hours=1)).isoformat()
    assert client.get("/v1/jobs", {"created_after": future}).json()["results"] == []
    assert len(client.get("/v1/jobs", {"created_before": future}).json()["results"]) == 5
    oldest_first = client.get("/v1/jobs?ordering=created_at").json()["results"]
    assert oldest_first[0]["id"] == str(jobs[0].id)


def test_job_list_rejects_bad_filter(client) -> None:
    response = client.get("/v1/jobs?status=NOPE")
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"


def test_idempotent_upload_returns_same_objects(client, data_root) -> None:
    first = upload(client, HTTP_IDEMPOTENCY_KEY="order-42")
    second = upload(client, HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert first.json()["document"]["id"] == second.json()["document"]["id"]
    assert first.json()["job"]["id"] == second.json()["job"]["id"]
    assert Document.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 1
    quarantine = list((data_root / "uploads" / "quarantine").rglob("*.pdf"))
    assert len([p for p in quarantine if first.json()["document"]["id"] in p.name]) == 1


def test_idempotency_key_reused_with_other_body(client) -> None:
    assert upload(client, HTTP_IDEMPOTENCY_KEY="k1").status_code == 201
    response = upload(client, MINIMAL_PDF + b"% other\n", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 422
    assert response.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    assert Document.objects.count() == 1


def test_idempotency_keys_are_per_tenant(client) -> None:
    other = client_for(create_api_key("globex").token)
    first = upload(client, HTTP_IDEMPOTENCY_KEY="same")
    second = upload(other, HTTP_IDEMPOTENCY_KEY="same")
    assert first.json()["document"]["id"] != second.json()["document"]["id"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"page_range": [5, 2]}, "page_range"),
        ({"page_range": [1]}, "page_range"),
        ({"ocr_engine": "easyocr"}, "ocr_engine"),
        ({"layout_engine": "yolo"}, "layout_engine"),
        ({"table_mode": "slow"}, "table_mode"),
        ({"chunking": {"tokenizer": "/etc/passwd"}}, "chunking"),
        ({"chunking": {"unknown": 1}}, "chunking"),
        ({"max_file_size_mb": 100000}, "max_file_size_mb"),
        ({"options_version": 2}, "options_version"),
    ],
)
def test_invalid_options_name_field(client, options: dict, field: str) -> None:
    import json

    data = {"file": SimpleUploadedFile("a.pdf", MINIMAL_PDF), "options": json.dumps(options)}
    response = client.post("/v1/documents", data, format="multipart")
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_OPTIONS"
    assert field in response.json()["details"]["fields"]


def test_resolved_options_fill_server_defaults(client, settings) -> None:
    settings.DOC_DEFAULT_OPTIONS = {"do_ocr": False, "chunking": {"strategy": "hierarchical"}}
    job = new_job(client)
    assert job.options_json["do_ocr"] is False
    assert job.options_json["chunking"]["strategy"] == "hierarchical"
    assert job.options_json["force"] is False
    assert job.options_json["page_range"] is None
    assert job.dedupe_key
