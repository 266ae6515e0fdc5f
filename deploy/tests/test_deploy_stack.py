"""Uploads and downloads through real Nginx, rendered from the shipped site file,
in front of socket-activated Gunicorn with ARTIFACT_DELIVERY=x-accel and a
Celery worker with JSON logs. See deploy/tests/conftest.py for the stack."""

import hashlib
import json
import re
import time
from pathlib import Path

import pytest

from accounts.keys import create_api_key
from conftest import JOB_TIMEOUT_SECONDS, corpus_file
from deploy.tests.conftest import DeployStack
from documents.models import Artifact, IngestionJob

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NGINX_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "QUARANTINED"}


def fake_pdf(size_bytes: int) -> bytes:
    head = b"%PDF-1.4\n"
    return head + b"0" * (size_bytes - len(head))


class Client:
    """An API client that goes through the stack's Nginx over HTTPS."""

    def __init__(self, stack: DeployStack, token: str) -> None:
        self.stack = stack
        self.http = stack.session()
        self.http.headers["Authorization"] = f"Api-Key {token}"

    def url(self, path: str) -> str:
        return f"{self.stack.https_url}{path}"

    def upload(self, name: str, data: bytes, options: dict | None = None, **kwargs):
        form = {"options": json.dumps(options)} if options else {}
        return self.http.post(
            self.url("/v1/documents"), files={"file": (name, data, "application/pdf")}, data=form, **kwargs
        )

    def wait_for_job(self, job_id: str) -> dict:
        deadline = time.monotonic() + JOB_TIMEOUT_SECONDS
        body: dict = {}
        while time.monotonic() < deadline:
            response = self.http.get(self.url(f"/v1/jobs/{job_id}"), timeout=30)
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] in TERMINAL:
                return body
            time.sleep(0.5)
        pytest.fail(f"Job {job_id} did not finish in {JOB_TIMEOUT_SECONDS} s: {body}")


@pytest.fixture
def client(deploy_stack: DeployStack) -> Client:
    return Client(deploy_stack, create_api_key("acme").token)


@pytest.fixture
def converted(client: Client) -> dict:
    """Upload the one-page corpus PDF through Nginx and wait for its job."""
    pdf = corpus_file("born_digital_lorem_1p.pdf").read_bytes()
    response = client.upload("lorem.pdf", pdf, {"do_ocr": False})
    assert response.status_code == 201, response.text
    job = client.wait_for_job(response.json()["job"]["id"])
    assert job["status"] == "SUCCEEDED", job
    return {"upload": response, "job": job}


def artifact_of(job: dict, kind: str) -> dict:
    return next(artifact for artifact in job["artifacts"] if artifact["kind"] == kind)


# --- downloads through X-Accel-Redirect ----------------------------------------------

def test_download_served_by_nginx(client: Client, converted: dict) -> None:
    artifact = artifact_of(converted["job"], "markdown")
    response = client.http.get(client.url(artifact["download_url"]))
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == artifact["checksum_sha256"]
    assert len(response.content) == artifact["size_bytes"]
    assert response.headers["X-Checksum-SHA256"] == artifact["checksum_sha256"]
    assert response.headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="lorem.md"'
    assert "X-Accel-Redirect" not in response.headers
    assert NGINX_REQUEST_ID.fullmatch(response.headers["X-Request-ID"])
    # Nginx, not Gunicorn, sent the bytes: only Nginx serves range requests.
    assert response.headers["Accept-Ranges"] == "bytes"


def test_range_request_gets_206(client: Client, converted: dict) -> None:
    artifact = artifact_of(converted["job"], "docling_json")
    whole = client.http.get(client.url(artifact["download_url"])).content
    response = client.http.get(client.url(artifact["download_url"]), headers={"Range": "bytes=10-99"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 10-99/{len(whole)}"
    assert response.content == whole[10:100]


def test_internal_location_returns_404(client: Client, converted: dict) -> None:
    artifact = Artifact.objects.get(pk=artifact_of(converted["job"], "markdown")["id"])
    direct = f"{client.stack.accel_prefix}{artifact.storage_relpath}"
    assert (client.stack.data_root / artifact.storage_relpath).exists()
    response = client.http.get(client.url(direct))
    assert response.status_code == 404
    assert response.content != (client.stack.data_root / artifact.storage_relpath).read_bytes()


def test_download_of_other_tenant_gets_404(deploy_stack: DeployStack, converted: dict) -> None:
    stranger = Client(deploy_stack, create_api_key("other-tenant").token)
    artifact = artifact_of(converted["job"], "markdown")
    response = stranger.http.get(stranger.url(artifact["download_url"]))
    assert response.status_code == 404
    assert response.json()["error_code"] == "NOT_FOUND"


def test_pruned_artifact_gets_410(client: Client, converted: dict) -> None:
    from django.utils import timezone

    artifact = artifact_of(converted["job"], "text")
    Artifact.objects.filter(pk=artifact["id"]).update(deleted_at=timezone.now())
    response = client.http.get(client.url(artifact["download_url"]))
    assert response.status_code == 410
    assert response.json()["error_code"] == "ARTIFACT_GONE"


# --- uploads -----------------------------------------------------------------------------

def test_oversize_upload_rejected_by_nginx(client: Client, deploy_stack: DeployStack) -> None:
    size = (deploy_stack.upload_max_size_mb + 2) * 1024 * 1024
    response = client.upload("big.pdf", fake_pdf(size))
    assert response.status_code == 413
    body = response.json()
    assert body["error_code"] == "FILE_TOO_LARGE"
    # Nginx's own response names its limit (the upload limit + 1 MiB), and
    # Django's names the upload limit.
    assert body["details"]["limit_mb"] == deploy_stack.upload_max_size_mb + 1


def test_file_over_limit_rejected_by_django(client: Client, deploy_stack: DeployStack) -> None:
    # Inside Nginx's limit, over Django's: the stream reaches Gunicorn, which stops it.
    size = deploy_stack.upload_max_size_mb * 1024 * 1024 + 512 * 1024
    response = client.upload("big.pdf", fake_pdf(size))
    assert response.status_code == 413
    assert response.json()["details"]["limit_mb"] == deploy_stack.upload_max_size_mb
    partial_files = list((deploy_stack.data_root / "uploads").rglob("*.part"))
    assert partial_files == []


def test_chunked_upload_accepted(client: Client) -> None:
    body = fake_pdf(300 * 1024)
    boundary = "deploy-test-boundary"
    multipart = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.pdf\"\r\n"
        f"Content-Type: application/pdf\r\n\r\n"
    ).encode() + body + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for start in range(0, len(multipart), 64 * 1024):
            yield multipart[start : start + 64 * 1024]

    response = client.http.post(
        client.url("/v1/documents"),
        data=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        params={},
    )
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    assert response.status_code == 201, response.text
    assert response.json()["document"]["size_bytes"] == len(body)


def test_http_redirects_to_https(deploy_stack: DeployStack) -> None:
    response = deploy_stack.session().get(f"{deploy_stack.http_url}/readyz", allow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"].startswith("https://localhost/readyz")


def test_static_files_served(deploy_stack: DeployStack) -> None:
    response = deploy_stack.session().get(f"{deploy_stack.https_url}/static/admin/css/base.css")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/css"
    assert response.content == (deploy_stack.static_root / "admin" / "css" / "base.css").read_bytes()


# --- one request id from Nginx to the worker ---------------------------------------------------

def json_lines(path: Path) -> list[dict]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


def test_request_id_followed_to_worker(client: Client, converted: dict, deploy_stack: DeployStack) -> None:
    upload = converted["upload"]
    job_id = converted["job"]["id"]
    request_id = upload.headers["X-Request-ID"]
    assert NGINX_REQUEST_ID.fullmatch(request_id)

    # Nginx's access log: the upload's line carries the same id.
    access = [entry for entry in json_lines(deploy_stack.nginx_access_log) if entry["request_id"] == request_id]
    assert len(access) == 1
    assert access[0]["method"] == "POST"
    assert access[0]["status"] == 201

    # The API's log (Gunicorn's worker, JSON).
    api_lines = [entry for entry in json_lines(deploy_stack.gunicorn_log) if entry.get("request_id") == request_id]
    assert any("uploaded" in entry["message"] for entry in api_lines)

    # The job row.
    job = IngestionJob.objects.get(pk=job_id)
    assert job.request_id == request_id

    # Every worker line of the job carries the request id and a task id,
    # including the lines of later stages, queued by the worker itself.
    worker_entries = json_lines(deploy_stack.worker.log_path)
    job_lines = [
        entry for entry in worker_entries
        if entry.get("job_id") == job_id or job_id in entry["message"]
    ]
    assert len(job_lines) >= 5
    for entry in job_lines:
        assert entry.get("job_id") == job_id, entry
        assert entry.get("request_id") == request_id, entry
        assert entry.get("celery_task_id"), entry
    task_ids = {entry["celery_task_id"] for entry in job_lines}
    assert len(task_ids) >= 2
    assert any("succeeded" in entry["message"] for entry in job_lines)

    # No log contains the key's secret.
    secret = client.http.headers["Authorization"].split()[-1].split(".", 1)[1]
    for path in (deploy_stack.nginx_access_log, deploy_stack.gunicorn_log, deploy_stack.worker.log_path):
        assert secret not in path.read_text(errors="replace")
