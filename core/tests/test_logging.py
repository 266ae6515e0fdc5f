"""Request ids, the log context filter, the formatters and the Celery task context."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from accounts.keys import create_api_key
from conftest import client_for
from core.celery_logging import (
    add_request_id_header,
    bind_task_log_context,
    job_id_argument,
    unbind_task_log_context,
)
from core.logging import (
    JsonFormatter,
    LogContextFilter,
    PlainFormatter,
    get_log_context,
    log_context,
    logging_config,
)
from documents.models import IngestionJob
from documents.tests.factories import PDF_BYTES, make_document, make_job, make_tenant

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_record(message: str = "Job %s started", *args: object) -> logging.LogRecord:
    record = logging.LogRecord("documents.pipeline", logging.INFO, __file__, 1, message, args, None)
    LogContextFilter().filter(record)
    return record


def test_json_formatter_adds_bound_ids() -> None:
    with log_context(request_id="req-12345678", job_id="job-1", celery_task_id="task-1"):
        record = make_record("Job %s started", "job-1")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Job job-1 started"
    assert entry["level"] == "INFO"
    assert entry["logger"] == "documents.pipeline"
    assert entry["request_id"] == "req-12345678"
    assert entry["job_id"] == "job-1"
    assert entry["celery_task_id"] == "task-1"
    assert entry["ts"].endswith("+00:00")


def test_json_formatter_omits_unset_ids() -> None:
    entry = json.loads(JsonFormatter().format(make_record()))
    assert "request_id" not in entry
    assert "job_id" not in entry


def test_json_formatter_includes_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    LogContextFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]


def test_plain_formatter_appends_ids() -> None:
    with log_context(request_id="req-12345678", job_id="job-1"):
        line = PlainFormatter().format(make_record())
    assert line.endswith("Job %s started [request_id=req-12345678 job_id=job-1]")


def test_log_context_restored_after_block() -> None:
    with log_context(request_id="outer-12345678"):
        with log_context(job_id="job-1"):
            assert get_log_context() == {"request_id": "outer-12345678", "job_id": "job-1"}
        assert get_log_context() == {"request_id": "outer-12345678"}
    assert get_log_context() == {}


def test_logging_config_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of json, plain"):
        logging_config("xml", "INFO")


def settings_value(name: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, **env}
    return subprocess.run(
        [
            sys.executable, "-c",
            f"import django; django.setup(); from django.conf import settings; print(settings.{name})",
        ],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=60,
    )


def test_prod_logs_json_by_default(tmp_path: Path) -> None:
    result = settings_value(
        "LOG_FORMAT",
        DJANGO_SETTINGS_MODULE="docling_service.settings.prod",
        DJANGO_SECRET_KEY="x" * 50,
        ALLOW_TEST_SIGNATURES="true",
        DATA_ROOT=str(tmp_path),
        LOG_FORMAT="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "json"


def test_dev_logs_plain_by_default() -> None:
    result = settings_value(
        "LOG_FORMAT", DJANGO_SETTINGS_MODULE="docling_service.settings.dev", LOG_FORMAT=""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "plain"


def test_bad_log_format_fails_at_startup() -> None:
    result = settings_value(
        "LOG_FORMAT", DJANGO_SETTINGS_MODULE="docling_service.settings.dev", LOG_FORMAT="xml"
    )
    assert result.returncode != 0
    assert "LOG_FORMAT must be one of json, plain, got 'xml'" in result.stderr


# --- request-id middleware ---------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("3f2b8c1e-5d4a-4b7e-9c2d-1a2b3c4d5e6f", True),
        ("short", False),
        ("x" * 65, False),
        ("bad id with spaces", False),
        ("inject\nfake-log-line", False),
    ],
)
def test_middleware_keeps_only_sane_ids(api_client, sent: str, kept: bool) -> None:
    response = api_client.get("/healthz", HTTP_X_REQUEST_ID=sent)
    returned = response["X-Request-ID"]
    if kept:
        assert returned == sent
    else:
        assert returned != sent
        assert len(returned) == 32


@pytest.mark.django_db
def test_middleware_creates_id_when_missing(api_client) -> None:
    first = api_client.get("/healthz")["X-Request-ID"]
    second = api_client.get("/healthz")["X-Request-ID"]
    assert len(first) == 32
    assert first != second


@pytest.mark.django_db
def test_error_response_carries_request_id(api_client) -> None:
    response = api_client.get("/v1/documents", HTTP_X_REQUEST_ID="abcdef0123456789")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "abcdef0123456789"


class CollectingHandler(logging.Handler):
    """A handler with the context filter, as the console handler has."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(LogContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.django_db
def test_upload_stores_request_id_on_job() -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = client_for(create_api_key("acme").token)
    request_id = "feedfacefeedfacefeedfacefeedface"
    handler = CollectingHandler()
    documents_logger = logging.getLogger("documents")
    documents_logger.addHandler(handler)
    try:
        response = client.post(
            "/v1/documents",
            {"file": SimpleUploadedFile("a.pdf", PDF_BYTES)},
            format="multipart",
            HTTP_X_REQUEST_ID=request_id,
        )
    finally:
        documents_logger.removeHandler(handler)
    assert response.status_code == 201, response.content
    job = IngestionJob.objects.get(pk=response.json()["job"]["id"])
    assert job.request_id == request_id
    uploaded = [record for record in handler.records if "uploaded" in record.getMessage()]
    assert uploaded
    assert all(record.request_id == request_id for record in uploaded)


# --- Celery task context -------------------------------------------------------------

def test_publish_adds_request_id_header() -> None:
    headers: dict[str, str] = {}
    with log_context(request_id="req-12345678"):
        add_request_id_header(headers=headers)
    assert headers == {"request_id": "req-12345678"}


def test_publish_without_request_id_adds_nothing() -> None:
    headers: dict[str, str] = {}
    add_request_id_header(headers=headers)
    assert headers == {}


def test_job_id_argument_found_by_name() -> None:
    from documents.tasks import prune_storage_task, scan_pdf_task

    assert job_id_argument(scan_pdf_task, ("job-1",), {}) == "job-1"
    assert job_id_argument(scan_pdf_task, (), {"job_id": "job-2"}) == "job-2"
    assert job_id_argument(prune_storage_task, (), {}) == ""


@pytest.mark.django_db
def test_task_context_reads_request_id_from_job_row() -> None:
    from documents.tasks import scan_pdf_task

    job = make_job(make_document(make_tenant()), request_id="row-request-id-1")
    scan_pdf_task.push_request()
    try:
        bind_task_log_context(task_id="task-9", task=scan_pdf_task, args=(str(job.id),), kwargs={})
        assert get_log_context() == {
            "request_id": "row-request-id-1",
            "job_id": str(job.id),
            "celery_task_id": "task-9",
        }
        unbind_task_log_context(task_id="task-9")
    finally:
        scan_pdf_task.pop_request()
    assert get_log_context() == {}


@pytest.mark.django_db
def test_task_context_prefers_header() -> None:
    from documents.tasks import scan_pdf_task

    job = make_job(make_document(make_tenant()), request_id="row-request-id-1")
    scan_pdf_task.push_request(request_id="header-request-id")
    try:
        bind_task_log_context(task_id="task-9", task=scan_pdf_task, args=(str(job.id),), kwargs={})
        assert get_log_context()["request_id"] == "header-request-id"
        unbind_task_log_context(task_id="task-9")
    finally:
        scan_pdf_task.pop_request()


def test_heartbeat_thread_keeps_log_context(monkeypatch) -> None:
    from documents.pipeline import Heartbeat

    seen: dict[str, str] = {}
    monkeypatch.setattr(Heartbeat, "_run", lambda self: seen.update(get_log_context()))
    with log_context(request_id="req-12345678", job_id="job-1", celery_task_id="task-1"):
        with Heartbeat("job-1", interval_seconds=0.01):
            pass
    assert seen == {"request_id": "req-12345678", "job_id": "job-1", "celery_task_id": "task-1"}
