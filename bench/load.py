"""Load the service with concurrent uploads while its parts fail, then check nothing was lost.

Usage (from the repository root, as root so that the harness can mount a
tmpfs; `make load` runs the full size):

    .venv/bin/python -m bench.load [--uploads 200] [--clients 8] [--small]

The harness starts its own stack on loopback (bench/stack.py): a private
redis-server, a private clamd, two Celery workers, Gunicorn with
deploy/gunicorn.conf.py and a loop that runs documents.reaper.reap()
every few seconds. DATA_ROOT is a tmpfs that the harness mounts and
unmounts. Each upload gets different bytes (a PDF comment after %%EOF),
so the dedupe cannot skip work.

The uploads come in four waves, with faults between them:

1. wave 1; as soon as a job converts, SIGKILL its worker (main and pool
   processes) and start a replacement: the reaper must requeue that job;
2. stop clamd, upload wave 2: its scans retry with backoff;
3. stop Redis during the clamd outage, upload part of wave 3 while it is
   down, start it again empty (every queued task message is lost) and
   upload the rest: the reaper must requeue those jobs;
4. start clamd again, upload wave 4.

Then every job must be SUCCEEDED with no stage past the deadline, every
file under DATA_ROOT must belong to a row (no orphan, no temporary or
partial file), and every artifact must match its size and checksum.

Last, DATA_ROOT is filled up: uploads must get 507 STORAGE_FULL, a job
converting at that moment must fail with STORAGE_FULL without leaving a
file behind, and after the space is freed a new upload must succeed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .client import ServiceClient, UploadResult, environment_header, load_average, print_header, unique_pdf_bytes
from .stack import CORPUS, ManagedProcess, Stack, bench_database_url, configure_django, fill_disk, recreate_database, tmpfs

# Corpus files that convert; the slowest (the 117-page book) is left out to
# keep the run short.
FULL_FILES = (
    "attachment_embedded_png.pdf",
    "born_digital_lorem_1p.pdf",
    "cjk_japanese_identity_cmap.pdf",
    "cjk_korean_4p.pdf",
    "code_and_formula_2p.pdf",
    "empty_page_no_contents.pdf",
    "encrypted_owner_only_aes128.pdf",
    "form_acroform_libreoffice.pdf",
    "ibm_redbook_18p_tables.pdf",
    "incremental_update_annotations.pdf",
    "javascript_form_buttons.pdf",
    "latex_two_column.pdf",
    "mixed_scan_ocr_plus_digital_7p.pdf",
    "pdf20_latex_math_attachments.pdf",
    "rtl_arabic.pdf",
    "scan_rotated_90.pdf",
    "scan_rotated_and_skewed.pdf",
    "scan_skewed.pdf",
    "sci_paper_tracemonkey_14p.pdf",
    "table_bordered_fuel.pdf",
    "table_borderless_health.pdf",
    "table_dense_grid_nics.pdf",
)
# One-page and two-page text files, for the run inside the test suite.
SMALL_FILES = (
    "born_digital_lorem_1p.pdf",
    "code_and_formula_2p.pdf",
    "form_acroform_libreoffice.pdf",
    "table_bordered_fuel.pdf",
)
# Converts in a few seconds, so the disk can be filled while it runs.
DISK_FULL_FILE = "sci_paper_tracemonkey_14p.pdf"
ARTIFACT_KINDS = {"docling_json", "markdown", "text", "doctags", "chunks_json"}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED", "QUARANTINED"}


@dataclass
class LoadConfig:
    """Size and timing of one run; `small()` is the version the test suite runs."""

    uploads: int = 200
    clients: int = 8
    files: tuple[str, ...] = FULL_FILES
    clamd_down_seconds: float = 30.0
    redis_down_seconds: float = 2.0
    deadline_seconds: float = 1800.0
    tmpfs_mb: int = 2048
    # Service settings for the run. A lost job is requeued JOB_STALE_SECONDS
    # after its last heartbeat; the scan retries (1, 2, 4, ... 32 s, 63 s in
    # all) outlast the clamd outage.
    settings: dict[str, str] = field(
        default_factory=lambda: {
            "JOB_HEARTBEAT_SECONDS": "2",
            "JOB_STALE_SECONDS": "20",
            "SCAN_MAX_RETRIES": "6",
            "SCAN_RETRY_BACKOFF_SECONDS": "1",
            "CELERY_TASK_SOFT_TIME_LIMIT": "600",
            "CELERY_TASK_TIME_LIMIT": "660",
        }
    )
    reaper_interval_seconds: float = 3.0

    @classmethod
    def small(cls) -> LoadConfig:
        config = cls(
            uploads=12,
            clients=4,
            files=SMALL_FILES,
            clamd_down_seconds=10.0,
            deadline_seconds=240.0,
            tmpfs_mb=256,
            reaper_interval_seconds=2.0,
        )
        config.settings["JOB_STALE_SECONDS"] = "10"
        return config


@dataclass
class LoadReport:
    failures: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.lines.append(line)
        print(f"load: {line}", flush=True)

    def check(self, condition: bool, failure: str) -> None:
        if not condition:
            self.failures.append(failure)
            print(f"load: FAILED CHECK: {failure}", flush=True)


class Uploader:
    """Concurrent uploads of corpus files, each with bytes of its own."""

    def __init__(self, base_url: str, token: str, files: tuple[str, ...], clients: int) -> None:
        self.base_url = base_url
        self.token = token
        self.files = [CORPUS / name for name in files]
        self.clients = clients
        self._local = threading.local()
        self._count = 0
        self._lock = threading.Lock()
        self.results: list[UploadResult] = []

    def client(self) -> ServiceClient:
        if not hasattr(self._local, "client"):
            self._local.client = ServiceClient(self.base_url, self.token, timeout=120)
        return self._local.client

    def _upload_one(self, _: int) -> UploadResult:
        with self._lock:
            index = self._count
            self._count += 1
        pdf = self.files[index % len(self.files)]
        try:
            result = self.client().upload(unique_pdf_bytes(pdf, f"load-{index}"), pdf.name)
        except Exception as exc:  # noqa: BLE001 - a failed request is a result to count
            result = UploadResult(0, {"error": f"{type(exc).__name__}: {exc}"}, 0.0)
        with self._lock:
            self.results.append(result)
        return result

    def wave(self, count: int) -> list[UploadResult]:
        with ThreadPoolExecutor(self.clients) as pool:
            return list(pool.map(self._upload_one, range(count)))


def wave_sizes(total: int, waves: int = 4) -> list[int]:
    base, extra = divmod(total, waves)
    return [base + (1 if index < extra else 0) for index in range(waves)]


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:  # noqa: ANN001 - a callable
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def job_statuses(tenant_id) -> Counter:  # noqa: ANN001 - a UUID
    from documents.models import IngestionJob

    return Counter(IngestionJob.objects.filter(tenant_id=tenant_id).values_list("status", flat=True))


def kill_converting_worker(stack: Stack, tenant_id, report: LoadReport) -> str | None:  # noqa: ANN001
    """SIGKILL the worker of the first job seen converting; return that job's id."""
    from documents.models import IngestionJob

    found: dict[str, str] = {}

    def converting() -> bool:
        job = (
            IngestionJob.objects.filter(
                tenant_id=tenant_id, status="RUNNING", stage="CONVERTING", worker_hostname__in=list(stack.workers)
            )
            .values("id", "worker_hostname")
            .first()
        )
        if job:
            found.update(job_id=str(job["id"]), hostname=job["worker_hostname"])
        return bool(job)

    if not wait_until(converting, timeout=120, interval=0.1):
        report.check(False, "no job reached CONVERTING within 120 s, so no worker was killed")
        return None
    worker = stack.workers[found["hostname"]]
    stack.kill_worker(worker)
    report.note(f"SIGKILLed worker {found['hostname']} while it converted job {found['job_id']}")
    return found["job_id"]


def check_files(data_root: Path, tenant_id, report: LoadReport) -> None:  # noqa: ANN001
    """Check that every file under DATA_ROOT belongs to a row and every artifact matches its size and checksum."""
    from documents.models import Artifact, Document, IngestionJob

    documents = Document.objects.filter(tenant_id=tenant_id)
    quarantine = set(documents.exclude(storage_relpath_quarantine="").values_list("storage_relpath_quarantine", flat=True))
    clean = set(documents.exclude(storage_relpath_clean="").values_list("storage_relpath_clean", flat=True))
    artifacts = {
        artifact.storage_relpath: artifact
        for artifact in Artifact.objects.filter(tenant_id=tenant_id, deleted_at__isnull=True)
    }
    unfinished = {
        str(job_id)
        for job_id in IngestionJob.objects.filter(tenant_id=tenant_id)
        .exclude(status="SUCCEEDED")
        .values_list("id", flat=True)
    }
    stray: list[str] = []
    for path in sorted(data_root.rglob("*")):
        if not path.is_file() or path.name == ".bench-filler":
            continue
        relpath = str(path.relative_to(data_root))
        top = relpath.split("/", 2)
        if relpath.endswith((".tmp", ".part")) or ".link." in path.name:
            stray.append(f"temporary or partial file {relpath}")
        elif relpath.startswith("uploads/quarantine/"):
            if relpath not in quarantine:
                stray.append(f"orphan file in quarantine {relpath}")
        elif relpath.startswith("uploads/clean/"):
            if relpath not in clean:
                stray.append(f"orphan clean upload {relpath}")
        elif relpath.startswith("artifacts/"):
            if relpath not in artifacts:
                stray.append(f"orphan artifact file {relpath}")
        elif top[0] == "work":
            # A failed job keeps its Docling JSON for a retry; a succeeded one must not.
            job_id = relpath.split("/")[2]
            if job_id not in unfinished:
                stray.append(f"work file of a finished job {relpath}")
        else:
            stray.append(f"unexpected file {relpath}")
    report.check(not stray, f"{len(stray)} stray files under DATA_ROOT: {stray[:10]}")

    bad: list[str] = []
    for relpath, artifact in artifacts.items():
        path = data_root / relpath
        if not path.is_file():
            bad.append(f"missing {relpath}")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != artifact.checksum_sha256 or path.stat().st_size != artifact.size_bytes:
            bad.append(f"checksum or size mismatch {relpath}")
    report.check(not bad, f"{len(bad)} artifacts with a wrong or missing file: {bad[:10]}")
    report.note(f"checked {len(artifacts)} artifact files and every file under DATA_ROOT")


def check_jobs(tenant_id, accepted: list[UploadResult], report: LoadReport) -> None:  # noqa: ANN001
    from documents.models import Artifact, IngestionJob, JobEvent

    jobs = IngestionJob.objects.filter(tenant_id=tenant_id)
    statuses = Counter(jobs.values_list("status", flat=True))
    report.note(f"jobs by status: {dict(statuses)}")
    accepted_ids = {result.job_id for result in accepted if result.job_id}
    known_ids = {str(job_id) for job_id in jobs.values_list("id", flat=True)}
    report.check(accepted_ids <= known_ids, f"{len(accepted_ids - known_ids)} accepted jobs are missing")
    not_terminal = jobs.exclude(status__in=TERMINAL)
    report.check(not not_terminal.exists(), f"{not_terminal.count()} jobs are not terminal (stuck)")
    failed = list(jobs.exclude(status="SUCCEEDED").values_list("id", "status", "stage", "error_code")[:10])
    report.check(not failed, f"jobs that did not succeed: {failed}")
    short = []
    for job in jobs.filter(status="SUCCEEDED"):
        kinds = set(Artifact.objects.filter(job=job, deleted_at__isnull=True).values_list("kind", flat=True))
        if kinds != ARTIFACT_KINDS:
            short.append((str(job.pk), sorted(kinds)))
    report.check(not short, f"succeeded jobs without every artifact: {short[:5]}")
    requeued = jobs.filter(requeue_count__gt=0).count()
    scan_retries = JobEvent.objects.filter(job__tenant_id=tenant_id, message="clamd unreachable; scan retried").count()
    durations = [ms for ms in jobs.values_list("duration_ms", flat=True) if ms is not None]
    report.note(
        f"reaper requeued {requeued} jobs; {scan_retries} scan retries; "
        f"longest job {max(durations, default=0) / 1000:.1f} s"
    )


def run_faults_and_waves(stack: Stack, uploader: Uploader, tenant_id, config: LoadConfig, report: LoadReport) -> None:  # noqa: ANN001
    sizes = wave_sizes(config.uploads)
    started = time.monotonic()

    uploader.wave(sizes[0])
    report.note(f"wave 1: {sizes[0]} uploads")
    replacement: ManagedProcess | None = None
    if kill_converting_worker(stack, tenant_id, report):
        replacement = stack.start_worker("load-worker-3", wait=False)

    stack.clamd.stop()
    clamd_stopped = time.monotonic()
    report.note("clamd stopped")
    uploader.wave(sizes[1])
    report.note(f"wave 2: {sizes[1]} uploads while clamd is down")

    time.sleep(min(5.0, config.clamd_down_seconds / 3))
    stack.redis.stop()
    redis_stopped = time.monotonic()
    during_outage = max(1, sizes[2] // 4)
    uploader.wave(during_outage)
    time.sleep(max(0.0, config.redis_down_seconds - (time.monotonic() - redis_stopped)))
    stack.redis.start()
    report.note(
        f"Redis restarted after {time.monotonic() - redis_stopped:.1f} s down, with {during_outage} uploads "
        "while it was down; its queued messages are gone"
    )
    uploader.wave(sizes[2] - during_outage)
    report.note(f"wave 3: {sizes[2]} uploads, {during_outage} of them while Redis was down")

    time.sleep(max(0.0, config.clamd_down_seconds - (time.monotonic() - clamd_stopped)))
    stack.clamd.start()
    report.note(f"clamd started again after {time.monotonic() - clamd_stopped:.0f} s")
    uploader.wave(sizes[3])
    report.note(f"wave 4: {sizes[3]} uploads")
    if replacement is not None:
        stack.wait_for_workers([replacement])

    remaining = config.deadline_seconds - (time.monotonic() - started)
    finished = wait_until(
        lambda: sum(count for status, count in job_statuses(tenant_id).items() if status not in TERMINAL) == 0,
        timeout=max(remaining, 1),
        interval=1.0,
    )
    report.note(f"all jobs terminal after {time.monotonic() - started:.0f} s" if finished else "deadline passed")


def run_disk_full(stack: Stack, uploader: Uploader, tenant_id, report: LoadReport) -> None:  # noqa: ANN001
    from documents.models import Artifact, IngestionJob

    client = ServiceClient(stack.base_url, uploader.token)
    pdf = CORPUS / DISK_FULL_FILE
    result = client.upload(unique_pdf_bytes(pdf, "disk-full-running"), pdf.name)
    report.check(result.status == 201, f"upload before the disk filled returned {result.status}: {result.body}")
    if result.job_id is None:
        return
    converting = wait_until(
        lambda: IngestionJob.objects.filter(pk=result.job_id, stage="CONVERTING", status="RUNNING").exists(),
        timeout=120,
        interval=0.05,
    )
    report.check(converting, "the job for the disk-full phase never started converting")
    filler = fill_disk(stack.data_root, leave_bytes=64 * 1024)
    report.note("DATA_ROOT filled to 64 KiB free while a job converts")

    big = CORPUS / "ibm_redbook_18p_tables.pdf"
    rejected = [client.upload(unique_pdf_bytes(big, f"disk-full-{index}"), big.name) for index in range(3)]
    codes = [(upload.status, upload.body.get("error_code")) for upload in rejected]
    report.check(all(code == (507, "STORAGE_FULL") for code in codes), f"uploads on a full disk returned {codes}")

    job = client.wait_for_job(result.job_id, timeout=300)
    report.check(
        (job["status"], job["error_code"]) == ("FAILED", "STORAGE_FULL"),
        f"the job running when the disk filled ended {job['status']} {job['error_code']}",
    )
    report.check(
        not Artifact.objects.filter(job_id=result.job_id).exists(), "the STORAGE_FULL job kept artifacts"
    )
    report.note(f"running job ended {job['status']} {job['error_code']} at {job['stage']}")
    check_files(stack.data_root, tenant_id, report)

    filler.unlink()
    again = client.upload(unique_pdf_bytes(CORPUS / "born_digital_lorem_1p.pdf", "after-disk-full"), "after.pdf")
    report.check(again.status == 201, f"upload after freeing space returned {again.status}")
    if again.job_id:
        job = client.wait_for_job(again.job_id, timeout=300)
        report.check(job["status"] == "SUCCEEDED", f"job after freeing space ended {job['status']} {job['error_code']}")
    report.note("after freeing space, a new upload converted")


def run_load(
    config: LoadConfig,
    folder: Path,
    database_url: str,
    create_token,  # noqa: ANN001 - a callable returning (tenant_id, token)
    stack_settings: dict[str, str] | None = None,
) -> LoadReport:
    """Run the waves, faults and checks; return what failed (an empty list when all held)."""
    report = LoadReport()
    data_root = folder / "data"
    with tmpfs(data_root, config.tmpfs_mb):
        stack = Stack(folder, database_url, data_root, settings={**config.settings, **(stack_settings or {})})
        with stack:
            stack.start_infrastructure()
            tenant_id, token = create_token(stack)
            workers = [stack.start_worker(f"load-worker-{index}", wait=False) for index in (1, 2)]
            base_url = stack.start_gunicorn()
            stack.wait_for_workers(workers)
            stack.start_reaper(config.reaper_interval_seconds, max_seconds=config.deadline_seconds + 600)
            report.note(
                f"{config.uploads} uploads by {config.clients} clients, 2 workers, "
                f"load average {load_average()}"
            )
            uploader = Uploader(base_url, token, config.files, config.clients)

            run_faults_and_waves(stack, uploader, tenant_id, config, report)
            statuses = Counter(result.status for result in uploader.results)
            report.note(f"upload answers: {dict(statuses)}")
            accepted = [result for result in uploader.results if result.status == 201]
            report.check(
                statuses[201] == config.uploads,
                f"{config.uploads - statuses[201]} uploads were not accepted: "
                f"{[r.body for r in uploader.results if r.status != 201][:3]}",
            )
            check_jobs(tenant_id, accepted, report)
            check_files(data_root, tenant_id, report)
            run_disk_full(stack, uploader, tenant_id, report)
            if report.failures:
                report.note(f"logs kept in {folder / 'logs'}")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the short run of the test suite")
    parser.add_argument("--uploads", type=int, help="number of uploads (default 200, 12 with --small)")
    parser.add_argument("--clients", type=int, help="concurrent upload clients (default 8, 4 with --small)")
    parser.add_argument("--database", default="docling_bench_load", help="benchmark database (re-created)")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.load: run as root; it mounts a tmpfs as DATA_ROOT to fill it up.")

    config = LoadConfig.small() if arguments.small else LoadConfig()
    config.uploads = arguments.uploads or config.uploads
    config.clients = arguments.clients or config.clients
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    database_url = bench_database_url(arguments.database)
    recreate_database(database_url)

    def create_token(stack: Stack) -> tuple[object, str]:
        configure_django(stack.env())
        from accounts.keys import create_api_key

        issued = create_api_key("bench-load", name="load")
        print_header(environment_header(database_url, stack.redis.version()))
        return issued.api_key.tenant_id, issued.token

    started = time.monotonic()
    report = run_load(config, folder, database_url, create_token)
    print(f"load: finished in {time.monotonic() - started:.0f} s; load average {load_average()}")
    if report.failures:
        print(f"load: {len(report.failures)} checks FAILED:", *report.failures, sep="\n  ")
        sys.exit(1)
    shutil.rmtree(folder, ignore_errors=True)
    print("load: every check passed")


if __name__ == "__main__":
    main()
