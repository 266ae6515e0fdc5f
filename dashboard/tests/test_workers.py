"""GET /v1/dashboard/workers against real Celery workers and Redis.

The workers here skip the Docling warm-up (DOCLING_WARM_UP=0): only their
control replies and heartbeats are under test, not conversions.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from accounts.keys import create_api_key
import conftest
from conftest import REPO_ROOT, client_for
from dashboard import workers

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

START_TIMEOUT_SECONDS = 60
# Heartbeats are written every HEARTBEAT_WRITE_SECONDS from Celery's 2 s tick.
HEARTBEAT_WAIT_SECONDS = workers.HEARTBEAT_WRITE_SECONDS + 5


def start_worker(hostname: str, log_path: Path, *extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "docling_service.settings.test",
        "DATABASE_URL": conftest.test_database_url(),
        "DATA_ROOT": str(settings.DATA_ROOT),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "DOCLING_WARM_UP": "0",
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "docling_service", "worker",
                "--loglevel", "INFO", "--without-mingle", "--without-gossip",
                "--hostname", hostname, *extra,
            ],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    from docling_service.celery import app

    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            pytest.fail(f"Celery worker exited at start-up:\n{log_path.read_text()[-4000:]}")
        if app.control.inspect(destination=[hostname], timeout=1.0, limit=1).ping():
            return worker
    stop_worker(worker)
    pytest.fail(f"Celery worker {hostname} did not reply to ping:\n{log_path.read_text()[-4000:]}")


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGCONT)
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


@pytest.fixture(scope="module")
def prefork_worker(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen]]:
    hostname = f"dashboard-prefork-{uuid.uuid4().hex[:6]}@localhost"
    log_path = tmp_path_factory.mktemp("worker") / "prefork.log"
    worker = start_worker(hostname, log_path, "--pool", "prefork", "--concurrency", "2")
    yield hostname, worker
    stop_worker(worker)


def wait_for(check: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(message)


def worker_row(body: dict, hostname: str) -> dict | None:
    return next((row for row in body["workers"] if row["hostname"] == hostname), None)


def test_worker_listed_with_heartbeat(prefork_worker) -> None:
    hostname, _ = prefork_worker
    client = client_for(create_api_key("acme", scopes=["dashboard:read"]).token)

    def answered_with_heartbeat() -> dict | None:
        cache.delete(workers.INSPECT_CACHE_KEY)
        body = client.get("/v1/dashboard/workers").json()
        row = worker_row(body, hostname)
        return body if row and row["answered_ping"] and row["last_heartbeat"] else None

    body = wait_for(answered_with_heartbeat, HEARTBEAT_WAIT_SECONDS, "No heartbeat from the worker")

    row = worker_row(body, hostname)
    assert body["workers_online"] >= 1
    assert row["online"] is True
    assert row["pool"] == "prefork"
    assert row["concurrency"] == 2
    assert row["active_tasks"] == 0
    # The main process plus two pool processes of a Django-loaded Celery.
    assert row["rss_mb"] > 50
    assert row["heartbeat_age_seconds"] < HEARTBEAT_WAIT_SECONDS
    assert body["queues"] == {"docling": body["queues"]["docling"]}
    assert isinstance(body["queues"]["docling"], int)
    assert body["errors"] == []


def test_inspect_result_cached(prefork_worker) -> None:
    hostname, _ = prefork_worker
    cache.delete(workers.INSPECT_CACHE_KEY)

    first_started = time.monotonic()
    first = workers.worker_status()
    first_seconds = time.monotonic() - first_started
    second_started = time.monotonic()
    second = workers.worker_status()
    second_seconds = time.monotonic() - second_started

    assert worker_row(first, hostname)["answered_ping"] is True
    assert second["inspected_at"] == first["inspected_at"]
    assert second_seconds < 0.5
    assert first_seconds < workers.INSPECT_TIMEOUT_SECONDS * 3


def test_stopped_worker_shown_from_heartbeat(prefork_worker) -> None:
    """A stopped worker (SIGSTOP) that cannot reply to inspect is still listed from its heartbeat."""
    hostname, worker = prefork_worker

    def fresh_heartbeat() -> bool:
        record = workers.read_heartbeats().get(hostname)
        return bool(record)

    wait_for(fresh_heartbeat, HEARTBEAT_WAIT_SECONDS, "No heartbeat from the worker")
    cache.delete(workers.INSPECT_CACHE_KEY)
    worker.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        body = workers.worker_status()
        elapsed = time.monotonic() - started
    finally:
        worker.send_signal(signal.SIGCONT)

    row = worker_row(body, hostname)
    assert row is not None
    assert row["answered_ping"] is False
    assert row["online"] is True
    assert row["pool"] == "prefork"
    assert row["concurrency"] == 2
    # One ping timeout and no further broadcast, because no worker replied.
    assert elapsed < workers.INSPECT_TIMEOUT_SECONDS + 1.5


def test_clean_shutdown_removes_heartbeat(tmp_path: Path) -> None:
    hostname = f"dashboard-solo-{uuid.uuid4().hex[:6]}@localhost"
    worker = start_worker(hostname, tmp_path / "solo.log", "--pool", "solo")
    try:
        record = wait_for(
            lambda: workers.read_heartbeats().get(hostname),
            HEARTBEAT_WAIT_SECONDS,
            "No heartbeat from the solo worker",
        )
        assert record["pool"] == "solo"
        assert record["concurrency"] == 1
    finally:
        stop_worker(worker)

    assert hostname not in workers.read_heartbeats()


def test_queue_depth_counts_waiting_messages(settings) -> None:
    queue = f"dashboard-test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    from docling_service.celery import app

    try:
        for _ in range(3):
            app.send_task("documents.scan_pdf_task", args=[str(uuid.uuid4())], queue=queue)
        app.send_task(
            "documents.scan_pdf_task", args=[str(uuid.uuid4())], queue=queue, priority=9
        )
        depths = workers.queue_depths()
    finally:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        separator = workers.KOMBU_PRIORITY_SEPARATOR
        client.delete(queue, *(f"{queue}{separator}{step}" for step in workers.KOMBU_PRIORITY_STEPS))
        client.close()

    assert depths == {queue: 4}
