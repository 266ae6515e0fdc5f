"""Measure API latency: uploads under concurrent clients, and job listings on big tables.

Usage (from the repository root):

    .venv/bin/python -m bench.api_latency [--part all|uploads|rows] [--rows 100000 1000000]

Uploads: 1 MB and 20 MB PDFs (a corpus PDF padded with a PDF comment
after %%EOF, different bytes each time) posted by 1, 4 and 8 concurrent
clients to Gunicorn with deploy/gunicorn.conf.py (2 processes of 4
threads). Each upload creates a job, whose task waits in the private
Redis: no worker runs, so conversions do not compete for the CPU.

Rows: `manage.py seed_jobs` fills a database of its own with N jobs over
10 tenants. Then GET /v1/jobs (first page, a status filter, the second
page) and GET /v1/dashboard/summary are timed for a key of one tenant
(N/10 jobs). Each SQL query of the summary and of the first page is
printed with the scan lines of its EXPLAIN (ANALYZE).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .client import ServiceClient, environment_header, load_average, median, percentile, print_header
from .stack import CORPUS, REPO_ROOT, Stack, bench_database_url, configure_django, recreate_database

MB = 1024 * 1024
BASE_PDF = "born_digital_lorem_1p.pdf"
TENANTS = 10
TIMED_REQUESTS = 40


def padded_pdf(size: int, tag: str) -> bytes:
    """Return a valid PDF of exactly `size` bytes: a corpus file plus a comment after %%EOF."""
    head = (CORPUS / BASE_PDF).read_bytes() + f"\n% {tag} ".encode()
    return head + b"x" * (size - len(head) - 1) + b"\n"


def bench_uploads(folder: Path, sizes_mb: list[int], client_counts: list[int], uploads_per_level: dict[int, int]) -> None:
    database_url = bench_database_url("docling_bench_api_uploads")
    recreate_database(database_url)
    with Stack(folder / "uploads", database_url, folder / "uploads" / "data") as stack:
        stack.start_infrastructure()
        configure_django(stack.env())
        from accounts.keys import create_api_key

        token = create_api_key("bench-uploads", name="bench").token
        base_url = stack.start_gunicorn(workers=2, threads=4)
        print_header(environment_header(database_url, stack.redis.version()))
        print("\n## Upload latency (POST /v1/documents, ingest=true, no worker running)\n")
        print("| file size | concurrent clients | uploads | p50 (ms) | p95 (ms) | max (ms) | MB/s (all clients) | non-201 |")
        print("|---|---|---|---|---|---|---|---|")
        for size_mb in sizes_mb:
            count = uploads_per_level[size_mb]
            # A warm-up upload per size, not timed.
            ServiceClient(base_url, token).upload(padded_pdf(size_mb * MB, "warm-up"), "warm.pdf")
            for clients in client_counts:
                bodies = [padded_pdf(size_mb * MB, f"{size_mb}-{clients}-{index}") for index in range(count)]

                def upload(index: int) -> tuple[int, float]:
                    result = ServiceClient(base_url, token).upload(bodies[index], f"size-{size_mb}.pdf")
                    return result.status, result.seconds

                started = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    results = list(pool.map(upload, range(count)))
                wall = time.perf_counter() - started
                latencies = [seconds * 1000 for _, seconds in results]
                errors = sum(1 for status, _ in results if status != 201)
                print(
                    f"| {size_mb} MB | {clients} | {count} | {percentile(latencies, 0.5):.0f} | "
                    f"{percentile(latencies, 0.95):.0f} | {max(latencies):.0f} | {count * size_mb / wall:.0f} | {errors} |",
                    flush=True,
                )
        print(f"\n# load average at end: {load_average()}")


def seed(database_url: str, count: int) -> float:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "docling_service.settings.test", "DATABASE_URL": database_url}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "manage.py", "seed_jobs", "--count", str(count), "--tenants", str(TENANTS), "--yes"],
        cwd=REPO_ROOT, env=env, check=True, timeout=3600, stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


def time_requests(client: ServiceClient, path: str, params: dict | None = None) -> tuple[float, float]:
    for _ in range(3):
        client.get_json(path, **(params or {}))
    latencies = []
    for _ in range(TIMED_REQUESTS):
        started = time.perf_counter()
        status, body = client.get_json(path, **(params or {}))
        latencies.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise RuntimeError(f"GET {path} returned {status}: {body}")
    return percentile(latencies, 0.5), percentile(latencies, 0.95)


def explain_lines(tenant_name: str) -> list[str]:
    """EXPLAIN (ANALYZE) every query of the summary and of the first job page, as Markdown lines."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from accounts.models import Tenant
    from dashboard import stats
    from documents.models import IngestionJob

    tenant = Tenant.objects.get(name=tenant_name)
    jobs = IngestionJob.objects.filter(tenant_id=tenant.id)
    with CaptureQueriesContext(connection) as captured:
        stats.summary(jobs, timezone.now())
        list(jobs.order_by("-created_at")[:51])
    lines = []
    for query in captured.captured_queries:
        sql = query["sql"]
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [row[0] for row in cursor.fetchall()]
        scans = [line.strip().removeprefix("-> ").strip() for line in plan if " Scan " in line or line.strip().startswith(("Seq Scan", "Index"))]
        timing = next((line for line in plan if line.startswith("Execution Time")), "")
        lines.append(f"- `{sql[:110]}…` ({timing})")
        lines.extend(f"    - {scan.split('  (')[0]}" for scan in scans)
    return lines


def bench_rows(folder: Path, row_counts: list[int]) -> None:
    database_url = bench_database_url("docling_bench_api_rows")
    recreate_database(database_url)
    with Stack(folder / "rows", database_url, folder / "rows" / "data") as stack:
        stack.start_infrastructure()
        configure_django(stack.env())
        from accounts.keys import create_api_key
        from documents.models import IngestionJob

        base_url = stack.start_gunicorn(workers=2, threads=4)
        print_header(environment_header(database_url, stack.redis.version()))
        seeded = 0
        results = []
        for target in row_counts:
            seconds = seed(database_url, target - seeded)
            seeded = target
            print(f"# seeded {IngestionJob.objects.count()} jobs in total ({seconds:.0f} s for this step)", flush=True)
            token = create_api_key("seed-00", name=f"bench-{target}").token
            client = ServiceClient(base_url, token)
            tenant_rows = IngestionJob.objects.filter(tenant__name="seed-00").count()
            _, first_page = client.get_json("/v1/jobs")
            next_cursor = first_page["next"].split("cursor=", 1)[1].split("&", 1)[0]
            row = {
                "rows": target,
                "tenant_rows": tenant_rows,
                "jobs": time_requests(client, "/v1/jobs"),
                "jobs_failed": time_requests(client, "/v1/jobs", {"status": "FAILED"}),
                "jobs_page_2": time_requests(client, "/v1/jobs", {"cursor": next_cursor}),
                "summary": time_requests(client, "/v1/dashboard/summary"),
            }
            results.append(row)
            print(f"# {row}", flush=True)
            print(f"\n### EXPLAIN at {target} rows (tenant seed-00, {tenant_rows} jobs)\n")
            print("\n".join(explain_lines("seed-00")), flush=True)

        print("\n## Listing latency (p50 / p95 ms, 40 sequential requests, key of one tenant of 10)\n")
        print("| jobs in table | jobs of the tenant | GET /v1/jobs | ?status=FAILED | second page (cursor) | GET /v1/dashboard/summary |")
        print("|---|---|---|---|---|---|")
        for row in results:
            cells = [f"{row[key][0]:.0f} / {row[key][1]:.0f}" for key in ("jobs", "jobs_failed", "jobs_page_2", "summary")]
            print(f"| {row['rows']:,} | {row['tenant_rows']:,} | " + " | ".join(cells) + " |")
        print(f"\n# load average at end: {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", choices=("all", "uploads", "rows"), default="all",
        help="which measurement to run; 'all' runs each in a process of its own",
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="table sizes, ascending")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8], help="concurrent upload clients")
    arguments = parser.parse_args()
    if arguments.part == "all":
        # Django binds to one database per process, and each part has its own.
        for part in ("uploads", "rows"):
            subprocess.run([sys.executable, "-m", "bench.api_latency", "--part", part, *sys.argv[1:]], check=True)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench-api-"))
    if arguments.part == "uploads":
        bench_uploads(folder, [1, 20], arguments.clients, {1: 48, 20: 16})
    else:
        bench_rows(folder, sorted(arguments.rows))
    print(f"# work folder: {folder}")


if __name__ == "__main__":
    main()
