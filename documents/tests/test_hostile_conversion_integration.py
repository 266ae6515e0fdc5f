"""Hostile PDFs against a real worker: each fails with its code, the worker stays up.

The PDFs are built by conversion/tests/hostile_pdfs.py. The worker here is
private and runs with a 1 GiB per-conversion memory cap, so the deflate
bomb breaks the cap quickly.
"""

import time
from pathlib import Path

import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for, corpus_file, wait_for_job
from conversion.tests import hostile_pdfs
from documents.tests.test_job_lifecycle_integration import (  # noqa: F401 - fixture
    private_workers,
    wait_for_converting,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("celery_worker"),
]

MEMORY_CAP_MB = 1024
EXPECTED_CODES = {
    "deflate_bomb_large.pdf": "SCAN_LIMIT_EXCEEDED",
    "deflate_bomb.pdf": "RESOURCE_LIMIT",
    "huge_image.pdf": "IMAGE_TOO_LARGE",
    "cyclic_page_tree.pdf": "PDF_CORRUPT",
    "many_blank_pages.pdf": "PAGE_LIMIT_EXCEEDED",
    "huge_page.pdf": "PAGE_TOO_LARGE",
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return hostile_pdfs.write_all(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def client():
    return client_for(create_api_key("acme").token)


def upload_bytes(client, name: str, data: bytes, options: str = '{"do_ocr": false, "force": true}') -> str:
    response = client.post(
        "/v1/documents",
        {"file": SimpleUploadedFile(name, data), "options": options},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()["job"]["id"]


def converter_processes(worker) -> list[psutil.Process]:
    main = psutil.Process(worker.process.pid)
    return [
        process
        for process in main.children(recursive=True)
        if "conversion.sandbox_child" in " ".join(process.cmdline())
    ]


def peak_rss_mb(process: psutil.Process) -> int:
    status = Path(f"/proc/{process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024


def test_hostile_pdfs_fail_with_codes_and_worker_survives(
    client, private_workers, hostile_files: dict[str, Path]
) -> None:
    worker = private_workers(
        "guarded", CONVERSION_MAX_MEMORY_MB=str(MEMORY_CAP_MB), CONVERSION_MAX_CPU_SECONDS="120"
    )
    pool_pids = {p.pid for p in psutil.Process(worker.process.pid).children()}
    for name, expected in EXPECTED_CODES.items():
        started = time.monotonic()
        job = wait_for_job(client, upload_bytes(client, name, hostile_files[name].read_bytes()), timeout=180)
        elapsed = time.monotonic() - started
        assert job["status"] == "FAILED", (name, job)
        assert job["error_code"] == expected, (name, job["error_code"], job["error_message"])
        assert job["artifacts"] == []
        print(f"{name}: {job['error_code']} in {elapsed:.1f} s ({job['error_message']})")
        if expected == "RESOURCE_LIMIT":
            details = job["error_details_json"]
            print(f"  conversion process: peak RSS {details['peak_rss_mb']} MB, {details['signal']}")

    # The Celery pool process was never replaced; only conversion processes died.
    assert {p.pid for p in psutil.Process(worker.process.pid).children()} == pool_pids
    normal = wait_for_job(
        client, upload_bytes(client, "lorem.pdf", corpus_file("born_digital_lorem_1p.pdf").read_bytes())
    )
    assert normal["status"] == "SUCCEEDED", normal
    pool_peak = max(peak_rss_mb(psutil.Process(pid)) for pid in pool_pids)
    converter_peak = max(peak_rss_mb(p) for p in converter_processes(worker))
    print(f"Peak RSS: pool process {pool_peak} MB, current conversion process {converter_peak} MB")
    # The pool process never loads Docling, so it stays small.
    assert pool_peak < MEMORY_CAP_MB


def test_poison_pdf_tried_at_most_max_crashes(client, settings, private_workers) -> None:
    """A conversion whose process dies each time stops after CONVERSION_MAX_CRASHES."""
    worker = private_workers("poisoned", CONVERSION_MAX_CRASHES="2")
    job_id = upload_bytes(client, "redbook.pdf", corpus_file("ibm_redbook_18p_tables.pdf").read_bytes())
    killed = set()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state = client.get(f"/v1/jobs/{job_id}").json()
        if state["status"] in {"FAILED", "SUCCEEDED"}:
            break
        if state["stage"] == "CONVERTING" and (state["progress"]["pages_done"] or 0) >= 1:
            for process in converter_processes(worker):
                if process.pid not in killed:
                    killed.add(process.pid)
                    process.kill()  # Stands in for a PDF that crashes its process.
        time.sleep(0.2)
    assert state["status"] == "FAILED", state
    assert state["error_code"] == "WORKER_CRASHED"
    assert state["error_details_json"]["conversion_crashes"] == 2
    starts = [e for e in state["events"] if e["message"] == "Converting started"]
    assert len(starts) == 2
    assert len(killed) == 2


def test_conversion_process_killed_once_still_succeeds(client, private_workers) -> None:
    worker = private_workers("bumpy")
    job_id = upload_bytes(client, "redbook.pdf", corpus_file("ibm_redbook_18p_tables.pdf").read_bytes())
    wait_for_converting(client, job_id)
    for process in converter_processes(worker):
        process.kill()
    job = wait_for_job(client, job_id, timeout=180)
    assert job["status"] == "SUCCEEDED", job
    assert any("crashed" in e["message"] for e in job["events"])
    assert len(job["artifacts"]) == 5
