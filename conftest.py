"""Fixtures shared by every app's tests.

Integration tests (marked `integration`) run against the real services:
PostgreSQL, Redis, clamd, and a Celery worker started here in a
subprocess with real Docling. They use transactional test cases, because
the worker reads the rows from its own database connection.
"""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from accounts.keys import IssuedKey, create_api_key

REPO_ROOT = Path(__file__).resolve().parent
CORPUS = REPO_ROOT.parent / "shared" / "corpus"
WORKER_START_TIMEOUT_SECONDS = 180
JOB_TIMEOUT_SECONDS = 300


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"Corpus file {name} is not present at {CORPUS}")
    return path


@pytest.fixture(scope="session", autouse=True)
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Give the test session an empty DATA_ROOT of its own."""
    root = tmp_path_factory.mktemp("data_root")
    settings.DATA_ROOT = root
    return root


@pytest.fixture(autouse=True)
def clear_cache() -> None:
    """Start every test with no rate-limit counts (the test cache is Redis db 14)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def issue_key(db: None) -> Callable[..., IssuedKey]:
    def issue(tenant: str = "acme", scopes: list[str] | None = None) -> IssuedKey:
        return create_api_key(tenant, name="test", scopes=scopes)

    return issue


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {token}")
    return client


@pytest.fixture(scope="session")
def broker_url() -> str:
    return settings.CELERY_BROKER_URL


class WorkerProcess:
    """A Celery worker subprocess on the test database and broker."""

    def __init__(self, process: subprocess.Popen, hostname: str, log_path: Path) -> None:
        self.process = process
        self.hostname = hostname
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_worker(
    name: str,
    log_dir: Path,
    data_root: Path,
    queue: str = "docling",
    extra_env: dict[str, str] | None = None,
) -> WorkerProcess:
    """Start a worker consuming `queue` and wait until it replies to ping."""
    import socket

    hostname = f"{name}@{socket.gethostname()}"
    log_path = log_dir / f"{name}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "docling_service.settings.test",
        "DATABASE_URL": test_database_url(),
        "DATA_ROOT": str(data_root),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_QUEUE": queue,
        "CLAMD_ADDRESS": settings.CLAMD_ADDRESS,
        "CLAMD_DATABASE_DIR": settings.CLAMD_DATABASE_DIR,
        **(extra_env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "docling_service", "worker",
                "--loglevel", "INFO", "--concurrency", "1", "--queues", queue,
                "--without-mingle", "--without-gossip", "--hostname", hostname,
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(process, hostname, log_path)
    wait_for_worker(worker)
    return worker


def wait_for_worker(worker: WorkerProcess) -> None:
    from docling_service.celery import app

    deadline = time.monotonic() + WORKER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"Celery worker exited at start-up:\n{worker.log()[-4000:]}")
        if app.control.ping(destination=[worker.hostname], timeout=1.0):
            return
    worker.stop()
    pytest.fail(f"Celery worker did not answer ping in time:\n{worker.log()[-4000:]}")


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: Any,
    django_db_blocker: Any,
    data_root: Path,
    broker_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerProcess]:
    """Start the session's shared worker on the default queue."""
    redis.Redis.from_url(broker_url).flushdb()
    worker = start_worker("test-worker", tmp_path_factory.mktemp("worker"), data_root)
    try:
        yield worker
    finally:
        worker.stop()


def wait_for_job(client: APIClient, job_id: str, timeout: float = JOB_TIMEOUT_SECONDS) -> dict:
    """Poll the job endpoint until the job is terminal; return its last body."""
    terminal = {"SUCCEEDED", "FAILED", "CANCELED", "QUARANTINED"}
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.content
        body = response.json()
        if body["status"] in terminal:
            return body
        time.sleep(0.5)
    pytest.fail(f"Job {job_id} did not finish in {timeout} s; last state: {body}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_database_url() -> str:
    database = settings.DATABASES["default"]
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


@pytest.fixture(scope="session")
def gunicorn_server(
    django_db_setup: Any, data_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start Gunicorn (one sync worker) on a loopback port; yield its base URL."""
    import urllib.request

    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "docling_service.settings.test",
        "DATABASE_URL": test_database_url(),
        "DATA_ROOT": str(data_root),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        # No worker consumes this queue: jobs the server's tests create stay
        # queued instead of running while the test database is flushed.
        "CELERY_QUEUE": "gunicorn-tests-unconsumed",
        "CLAMD_ADDRESS": settings.CLAMD_ADDRESS,
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "docling_service.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--timeout", "120",
            ],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/healthz", timeout=1)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"Gunicorn did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
    try:
        yield base_url, server
    finally:
        server.terminate()
        server.wait(timeout=30)
