"""An upload while the broker is down still returns 201; the reaper sends the task later."""

import logging

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from kombu.exceptions import OperationalError

from accounts.keys import create_api_key
from conftest import client_for
from documents import tasks
from documents.models import IngestionJob
from documents.tests.factories import PDF_BYTES

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_with_broker_down_keeps_job(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def raise_connection_refused(*args: object, **kwargs: object) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.scan_pdf_task, "apply_async", raise_connection_refused)
    client = client_for(create_api_key("acme").token)
    with caplog.at_level(logging.ERROR, logger="documents.jobs"):
        response = client.post(
            "/v1/documents",
            {"file": SimpleUploadedFile("report.pdf", PDF_BYTES, content_type="application/pdf")},
            format="multipart",
        )
    assert response.status_code == 201, response.content
    job = IngestionJob.objects.get(pk=response.json()["job"]["id"])
    assert job.status == IngestionJob.Status.QUEUED
    assert job.heartbeat_at is not None
    assert "the reaper will requeue the job" in caplog.text
