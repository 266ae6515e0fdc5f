"""The reaper against real Redis and Celery inspect, on job rows set up here."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.keys import create_api_key
from documents import reaper
from documents.jobs import enqueue_stage
from documents.models import Document, IngestionJob

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list:
    """Record tasks the reaper queues instead of sending them."""
    calls: list = []
    from documents import tasks

    for task in (tasks.scan_pdf_task, tasks.docling_convert_task):
        monkeypatch.setattr(task, "apply_async", lambda args, task_id, queue, calls=calls: calls.append(task_id))
    return calls


def make_job(stage: str, heartbeat_age: timedelta, stage_age: timedelta, **fields) -> IngestionJob:
    key = create_api_key("acme").api_key
    document = Document.objects.create(
        tenant=key.tenant, sha256="0" * 64, size_bytes=1, status=Document.Status.CLEAN
    )
    now = timezone.now()
    return IngestionJob.objects.create(
        tenant=key.tenant,
        document=document,
        status=IngestionJob.Status.RUNNING,
        stage=stage,
        started_at=now - stage_age,
        stage_started_at=now - stage_age,
        heartbeat_at=now - heartbeat_age,
        celery_task_id="lost-task-id",
        **fields,
    )


def test_lost_running_job_is_requeued(settings, sent: list) -> None:
    settings.JOB_STALE_SECONDS = 60
    job = make_job("CONVERTING", timedelta(minutes=5), timedelta(minutes=6))
    assert reaper.reap()["requeued"] == 1
    job.refresh_from_db()
    assert job.requeue_count == 1
    assert job.status == IngestionJob.Status.RUNNING
    assert job.celery_task_id != "lost-task-id"
    assert sent == [job.celery_task_id]
    assert job.events.filter(message__startswith="Lost task requeued at CONVERTING").exists()


def test_fresh_heartbeat_is_left_alone(settings, sent: list) -> None:
    settings.JOB_STALE_SECONDS = 60
    make_job("CONVERTING", timedelta(seconds=5), timedelta(minutes=6))
    assert reaper.reap() == {"requeued": 0, "failed": 0, "alive": 0}
    assert sent == []


def test_job_lost_too_often_fails(settings, sent: list) -> None:
    settings.JOB_STALE_SECONDS = 60
    settings.JOB_MAX_REQUEUES = 2
    job = make_job("CONVERTING", timedelta(minutes=5), timedelta(minutes=6), requeue_count=2)
    assert reaper.reap()["failed"] == 1
    job.refresh_from_db()
    assert job.status == IngestionJob.Status.FAILED
    assert job.error_code == "LOST_WORKER"
    assert sent == []


def test_stage_past_hard_limit_fails_with_timeout(settings, sent: list) -> None:
    settings.JOB_STALE_SECONDS = 60
    settings.CELERY_TASK_TIME_LIMIT = 600
    # The heartbeat ran until the hard limit killed the process.
    job = make_job("CONVERTING", timedelta(minutes=5), timedelta(minutes=15))
    assert reaper.reap()["failed"] == 1
    job.refresh_from_db()
    assert job.error_code == "TIMEOUT"
    assert "600 seconds" in job.error_message


def test_message_still_in_queue_is_alive(settings) -> None:
    """A job waiting behind others in the broker's queue is not lost."""
    import redis

    settings.JOB_STALE_SECONDS = 60
    settings.CELERY_TASK_DEFAULT_QUEUE = "reaper-test-queue"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("reaper-test-queue")
    job = make_job("CONVERTING", timedelta(minutes=5), timedelta(minutes=6))
    from django.db import transaction

    with transaction.atomic():
        enqueue_stage(job, "CONVERTING")
    IngestionJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    try:
        assert reaper.reap()["alive"] == 1
        job.refresh_from_db()
        assert job.requeue_count == 0
    finally:
        client.delete("reaper-test-queue")
