"""Cancel, retry, progress, reuse and lost workers, on real Celery workers.

Tests that kill or misconfigure a worker start private workers on a queue of
their own, so the session's shared worker is never disturbed.
"""

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from accounts.keys import create_api_key
from conftest import WorkerProcess, client_for, corpus_file, start_worker, wait_for_job
from documents import reaper
from documents.models import Artifact, IngestionJob

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

TEXT_OPTIONS = {"do_ocr": False}


@pytest.fixture
def client():
    return client_for(create_api_key("acme").token)


@pytest.fixture
def private_workers(
    settings, data_root: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on a queue only this test uses; jobs queued now go there."""
    queue = f"test-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    started: list[WorkerProcess] = []

    def start(name: str, **extra_env: str) -> WorkerProcess:
        worker = start_worker(f"{name}-{queue}", tmp_path, data_root, queue=queue, extra_env=extra_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def upload(client, name: str, options: dict | None = None) -> str:
    import json

    from django.core.files.uploadedfile import SimpleUploadedFile

    path = corpus_file(name)
    data = {"file": SimpleUploadedFile(path.name, path.read_bytes())}
    if options is not None:
        data["options"] = json.dumps(options)
    response = client.post("/v1/documents", data, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["job"]["id"]


def job_state(client, job_id: str) -> dict:
    return client.get(f"/v1/jobs/{job_id}").json()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"Timed out after {timeout} s waiting for {what}")


def wait_for_converting(client, job_id: str, min_pages: int = 1) -> dict:
    state: dict = {}

    def converting() -> bool:
        nonlocal state
        state = job_state(client, job_id)
        assert state["status"] not in {"FAILED", "SUCCEEDED"}, state
        return state["stage"] == "CONVERTING" and (state["progress"]["pages_done"] or 0) >= min_pages

    wait_until(converting, 120, f"job {job_id} to convert {min_pages} page(s)")
    return state


def task_process_id(task_id: str) -> int:
    from docling_service.celery import app

    for tasks in (app.control.inspect(timeout=2).active() or {}).values():
        for task in tasks:
            if task["id"] == task_id:
                return task["worker_pid"]
    pytest.fail(f"Task {task_id} is not active on any worker")


def artifact_files(job: dict, data_root: Path) -> list[Path]:
    folder = data_root / "artifacts"
    return [p for p in folder.rglob("*") if p.is_file() and job["id"] in str(p)]


def test_progress_increases_while_converting(client) -> None:
    job_id = upload(client, "ibm_redbook_18p_tables.pdf", {**TEXT_OPTIONS, "force": True})
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = job_state(client, job_id)
        done = state["progress"]["pages_done"]
        if state["stage"] == "CONVERTING" and done and (not seen or done != seen[-1]):
            seen.append(done)
            assert state["progress"]["pages_total"] == 18
        if state["status"] == "SUCCEEDED":
            break
        time.sleep(0.1)
    assert state["status"] == "SUCCEEDED", state
    assert state["progress"] == {"pages_done": 18, "pages_total": 18}
    assert len(seen) >= 2, seen
    assert seen == sorted(seen)


def test_cancel_running_job_stops_process(client, data_root: Path) -> None:
    # A long book, so the job is still converting when the cancel arrives.
    running_id = upload(client, "book_geotopo_117p_german_linearized.pdf", {**TEXT_OPTIONS, "force": True})
    state = wait_for_converting(client, running_id)
    pid = task_process_id(state["celery_task_id"])
    # The one worker process is busy, so this job's first task waits in the queue.
    queued_id = upload(client, "born_digital_lorem_1p.pdf", {**TEXT_OPTIONS, "force": True})
    assert job_state(client, queued_id)["status"] == "QUEUED"

    response = client.post(f"/v1/jobs/{queued_id}/cancel")
    assert response.json()["status"] == "CANCELED"
    started = time.monotonic()
    response = client.post(f"/v1/jobs/{running_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELED"
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
               10, f"conversion process {pid} to stop")
    print(f"Conversion process stopped {time.monotonic() - started:.2f} s after cancel")

    time.sleep(2)
    running = job_state(client, running_id)
    assert running["status"] == "CANCELED"
    assert running["artifacts"] == []
    assert artifact_files(running, data_root) == []
    queued = job_state(client, queued_id)
    assert queued["status"] == "CANCELED"
    assert queued["started_at"] is None
    assert all("started" not in event["message"] for event in queued["events"])

    # The worker replaced the killed process; the next job converts.
    after = wait_for_job(client, upload(client, "born_digital_lorem_1p.pdf", {**TEXT_OPTIONS, "force": True}))
    assert after["status"] == "SUCCEEDED", after


def test_reuse_of_identical_job(client, data_root: Path) -> None:
    first = wait_for_job(client, upload(client, "born_digital_lorem_1p.pdf", {"do_ocr": False, "exports": ["markdown"]}))
    second = wait_for_job(client, upload(client, "born_digital_lorem_1p.pdf", {"do_ocr": False, "exports": ["markdown"]}))
    assert first["status"] == second["status"] == "SUCCEEDED"
    assert second["reused_from"] == first["id"]
    assert second["convert_ms"] == 0
    first_files = {a["kind"]: a for a in first["artifacts"]}
    second_files = {a["kind"]: a for a in second["artifacts"]}
    assert set(first_files) == set(second_files)
    for kind, artifact in second_files.items():
        assert artifact["checksum_sha256"] == first_files[kind]["checksum_sha256"]
        source = Artifact.objects.get(pk=first_files[kind]["id"]).get_path()
        copy = Artifact.objects.get(pk=artifact["id"]).get_path()
        assert copy != source
        assert os.stat(copy).st_ino == os.stat(source).st_ino

    # Other options give other output, so nothing is reused.
    third = wait_for_job(client, upload(client, "born_digital_lorem_1p.pdf", {"do_ocr": False, "exports": ["text"]}))
    assert third["reused_from"] is None
    assert third["convert_ms"] > 0


def test_worker_killed_mid_conversion_job_still_succeeds(
    client, settings, private_workers, data_root: Path
) -> None:
    settings.JOB_STALE_SECONDS = 3
    first = private_workers("doomed")
    job_id = upload(client, "ibm_redbook_18p_tables.pdf", {**TEXT_OPTIONS, "force": True})
    wait_for_converting(client, job_id)
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait()

    private_workers("rescuer")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        reaper.reap()
        state = job_state(client, job_id)
        if state["status"] in {"SUCCEEDED", "FAILED"}:
            break
        time.sleep(1)
    assert state["status"] == "SUCCEEDED", state
    assert state["requeue_count"] == 1
    assert any("Lost task requeued at CONVERTING" in event["message"] for event in state["events"])
    kinds = sorted(artifact["kind"] for artifact in state["artifacts"])
    assert kinds == ["chunks_json", "docling_json", "doctags", "markdown", "text"]
    assert len(artifact_files(state, data_root)) == 5


def test_soft_time_limit_fails_with_timeout(client, private_workers) -> None:
    private_workers("hurried", CELERY_TASK_SOFT_TIME_LIMIT="1", CELERY_TASK_TIME_LIMIT="60")
    job = wait_for_job(client, upload(client, "ibm_redbook_18p_tables.pdf", {**TEXT_OPTIONS, "force": True}))
    assert job["status"] == "FAILED", job
    assert job["error_code"] == "TIMEOUT"
    assert "1 seconds" in job["error_message"]
    assert job["artifacts"] == []


def test_retry_resumes_at_failed_stage(client, private_workers) -> None:
    broken = private_workers("broken", DOCLING_TOKENIZER_PATH="/nonexistent/tokenizer")
    failed = wait_for_job(client, upload(client, "born_digital_lorem_1p.pdf", {**TEXT_OPTIONS, "force": True}))
    assert failed["status"] == "FAILED", failed
    assert failed["stage"] == "CHUNKING"
    broken.stop()

    private_workers("fixed")
    response = client.post(f"/v1/jobs/{failed['id']}/retry")
    assert response.status_code == 200, response.content
    assert response.json()["stage"] == "CHUNKING"
    job = wait_for_job(client, failed["id"])
    assert job["status"] == "SUCCEEDED", job
    assert job["attempt"] == 2
    assert job["convert_ms"] == failed["convert_ms"]
    assert not any(event["message"] == "Converting started" for event in job["events"][len(failed["events"]):])
    assert len(job["artifacts"]) == 5


def test_long_book_converts_at_default_limits(client) -> None:
    job_id = upload(client, "book_geotopo_117p_german_linearized.pdf", {**TEXT_OPTIONS, "force": True})
    state = wait_for_converting(client, job_id, min_pages=10)
    assert state["progress"]["pages_total"] == 117
    job = wait_for_job(client, job_id, timeout=900)
    assert job["status"] == "SUCCEEDED", job
    assert job["progress"] == {"pages_done": 117, "pages_total": 117}
    print(f"117-page book: convert {job['convert_ms']} ms, {job['convert_ms'] / 117:.0f} ms per page")
