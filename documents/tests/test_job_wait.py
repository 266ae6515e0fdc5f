"""GET /v1/jobs/{id}?wait=N keeps the request open until the job ends."""

import threading
import time

import pytest
from django.db import connection

from accounts.keys import create_api_key
from conftest import client_for
from documents.models import IngestionJob
from documents.tests.factories import make_document, make_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def issued():
    return create_api_key("acme")


def running_job(issued) -> IngestionJob:
    job = make_job(make_document(issued.api_key.tenant), status=IngestionJob.Status.RUNNING)
    IngestionJob.objects.filter(pk=job.pk).update(created_by_key=issued.api_key)
    return job


def finish_later(job_id, delay: float) -> threading.Thread:
    def finish() -> None:
        time.sleep(delay)
        IngestionJob.objects.filter(pk=job_id).update(status=IngestionJob.Status.SUCCEEDED)
        connection.close()

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


def test_wait_returns_when_job_ends(issued) -> None:
    job = running_job(issued)
    thread = finish_later(job.pk, 0.5)
    started = time.monotonic()
    response = client_for(issued.token).get(f"/v1/jobs/{job.pk}", {"wait": 10})
    elapsed = time.monotonic() - started
    thread.join()
    assert response.status_code == 200
    assert response.json()["status"] == "SUCCEEDED"
    assert 0.5 <= elapsed < 2


def test_wait_on_finished_job_is_immediate(issued) -> None:
    job = running_job(issued)
    IngestionJob.objects.filter(pk=job.pk).update(status=IngestionJob.Status.FAILED)
    started = time.monotonic()
    response = client_for(issued.token).get(f"/v1/jobs/{job.pk}", {"wait": 10})
    assert response.status_code == 200
    assert response.json()["status"] == "FAILED"
    assert time.monotonic() - started < 1


def test_wait_times_out_with_running_job(issued) -> None:
    job = running_job(issued)
    started = time.monotonic()
    response = client_for(issued.token).get(f"/v1/jobs/{job.pk}", {"wait": 1})
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] == "RUNNING"
    assert 1 <= elapsed < 3


@pytest.mark.parametrize("value", ["-1", "61", "soon", "1.5"])
def test_wait_rejects_invalid_value(issued, value: str) -> None:
    job = running_job(issued)
    response = client_for(issued.token).get(f"/v1/jobs/{job.pk}", {"wait": value})
    assert response.status_code == 400
    assert response.json()["error_code"] == "VALIDATION_ERROR"


def test_wait_on_other_tenant_job_is_404(issued) -> None:
    job = running_job(issued)
    other = create_api_key("globex")
    started = time.monotonic()
    response = client_for(other.token).get(f"/v1/jobs/{job.pk}", {"wait": 10})
    assert response.status_code == 404
    assert time.monotonic() - started < 1
