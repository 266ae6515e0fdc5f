"""Follow a Celery worker's memory (RSS) across many conversions of one small PDF.

Usage (from the repository root):

    .venv/bin/python -m bench.worker_memory [--jobs 500] [--max-tasks-per-child 200] [--max-memory-per-child-kb 4000000]

One worker with one pool process (the service's defaults for the recycle
limits unless given) converts the same one-page PDF --jobs times: it is
uploaded once with ingest=false, then POST /v1/documents/{id}/ingest
queues each job with {"force": true}, so the dedupe does not skip the work.
Every 0.5 s the harness records the RSS of the worker's main process, of
its pool process (which Celery replaces after CELERY_WORKER_MAX_TASKS_PER_CHILD
tasks, five per job, or when its own RSS passes
CELERY_WORKER_MAX_MEMORY_PER_CHILD) and of the conversion process that
the pool process starts. It prints the curve in steps of 50 conversions.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from .client import ServiceClient, environment_header, load_average, print_header
from .stack import CORPUS, Stack, bench_database_url, configure_django, recreate_database

PDF = "born_digital_lorem_1p.pdf"
SAMPLE_SECONDS = 0.5
STEP_CONVERSIONS = 50


@dataclass
class Sample:
    at: float
    conversions_done: int
    main_mb: float
    pool_mb: float
    conversion_mb: float
    pool_pids: frozenset[int]
    conversion_pids: frozenset[int]


def rss_tree(main_pid: int) -> tuple[float, float, float, set[int], set[int]]:
    """Return RSS (MiB) of the worker's main, pool and conversion processes, and their pids."""
    main = psutil.Process(main_pid)
    main_mb = main.memory_info().rss / 2**20
    pool_mb = conversion_mb = 0.0
    pool_pids: set[int] = set()
    conversion_pids: set[int] = set()
    for child in main.children():
        try:
            pool_mb += child.memory_info().rss / 2**20
            pool_pids.add(child.pid)
            for grandchild in child.children(recursive=True):
                conversion_mb += grandchild.memory_info().rss / 2**20
                conversion_pids.add(grandchild.pid)
        except psutil.NoSuchProcess:
            continue
    return main_mb, pool_mb, conversion_mb, pool_pids, conversion_pids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--max-tasks-per-child", type=int, default=None, help="default: the service's setting")
    parser.add_argument("--max-memory-per-child-kb", type=int, default=None, help="default: the service's setting")
    parser.add_argument("--database", default="docling_bench_memory")
    arguments = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    database_url = bench_database_url(arguments.database)
    recreate_database(database_url)
    overrides = {}
    if arguments.max_tasks_per_child:
        overrides["CELERY_WORKER_MAX_TASKS_PER_CHILD"] = str(arguments.max_tasks_per_child)
    if arguments.max_memory_per_child_kb:
        overrides["CELERY_WORKER_MAX_MEMORY_PER_CHILD"] = str(arguments.max_memory_per_child_kb)
    with Stack(folder, database_url, folder / "data", settings=overrides) as stack:
        stack.start_infrastructure()
        configure_django(stack.env())
        from django.conf import settings
        from django.db.models import Count

        from accounts.keys import create_api_key
        from documents.models import IngestionJob

        token = create_api_key("bench-memory", name="bench").token
        worker = stack.start_worker("memory-worker")
        base_url = stack.start_gunicorn()
        client = ServiceClient(base_url, token)
        print_header(environment_header(database_url, stack.redis.version()))
        print(
            f"# CELERY_WORKER_MAX_TASKS_PER_CHILD={settings.CELERY_WORKER_MAX_TASKS_PER_CHILD} "
            f"CELERY_WORKER_MAX_MEMORY_PER_CHILD={settings.CELERY_WORKER_MAX_MEMORY_PER_CHILD} KiB "
            f"CONVERSION_MAX_MEMORY_MB={getattr(settings, 'CONVERSION_MAX_MEMORY_MB', 'unset')}"
        )

        upload = client.upload((CORPUS / PDF).read_bytes(), PDF, ingest=False)
        document_id = upload.body["document"]["id"]
        samples: list[Sample] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    main_mb, pool_mb, conversion_mb, pools, conversions = rss_tree(worker.pid)
                except psutil.NoSuchProcess:
                    break
                # Conversions, not finished jobs: the queue is first in, first
                # out, so every job's last stages wait behind all conversions.
                done = IngestionJob.objects.filter(convert_ms__isnull=False).count()
                samples.append(
                    Sample(time.monotonic(), done, main_mb, pool_mb, conversion_mb, frozenset(pools), frozenset(conversions))
                )
                stop.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        for _ in range(arguments.jobs):
            response = client.session.post(
                f"{base_url}/v1/documents/{document_id}/ingest", json={"options": {"force": True}}, timeout=60
            )
            if response.status_code != 201:
                raise RuntimeError(f"POST /v1/documents/{document_id}/ingest returned {response.status_code}")
        deadline = time.monotonic() + 3 * 3600
        while IngestionJob.objects.exclude(status__in=IngestionJob.TERMINAL_STATUSES).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("jobs did not finish in 3 hours")
            time.sleep(2)
        stop.set()
        sampler.join()
        elapsed = time.monotonic() - started
        statuses = dict(IngestionJob.objects.order_by().values_list("status").annotate(total=Count("id")))
        print(f"# {arguments.jobs} jobs in {elapsed:.0f} s; statuses {statuses}; load average at end {load_average()}")

        print("\n| conversions done | main process (MiB) | pool process (MiB, max in step) | conversion process (MiB, max in step) | worker total (MiB, max in step) | pool processes seen | conversion processes seen |")
        print("|---|---|---|---|---|---|---|")
        pools_seen: set[int] = set()
        conversions_seen: set[int] = set()
        last_step = (arguments.jobs - 1) // STEP_CONVERSIONS
        for step in range(last_step + 1):
            in_step = [s for s in samples if min(s.conversions_done // STEP_CONVERSIONS, last_step) == step]
            if not in_step:
                continue
            for s in in_step:
                pools_seen |= s.pool_pids
                conversions_seen |= s.conversion_pids
            print(
                f"| {step * STEP_CONVERSIONS}–{min((step + 1) * STEP_CONVERSIONS, arguments.jobs)} | {max(s.main_mb for s in in_step):.0f} | "
                f"{max(s.pool_mb for s in in_step):.0f} | {max(s.conversion_mb for s in in_step):.0f} | "
                f"{max(s.main_mb + s.pool_mb + s.conversion_mb for s in in_step):.0f} | {len(pools_seen)} | {len(conversions_seen)} |"
            )
        peak = max(samples, key=lambda s: s.main_mb + s.pool_mb + s.conversion_mb)
        print(
            f"\n# peak worker total {peak.main_mb + peak.pool_mb + peak.conversion_mb:.0f} MiB after {peak.conversions_done} conversions; "
            f"{len(pools_seen)} pool processes and {len(conversions_seen)} conversion processes over the run"
        )


if __name__ == "__main__":
    main()
