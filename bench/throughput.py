"""Measure conversion throughput (pages per second) of the whole service on the shared corpus.

Usage (from the repository root):

    .venv/bin/python -m bench.throughput [--repeat 2] [--configs 1x2 2x2 2x1]

Each config is WORKER_PROCESSESxDOCLING_NUM_THREADS: one Celery worker
with that --concurrency, each pool process with its own conversion process
using that many threads. For each config and each mix, every file of the
mix is uploaded --repeat (OCR mix: --ocr-repeat) times at once, with different bytes each time
and the default options. The figure is the mix's pages divided by the
wall time from the first upload to the last job's end. The text mix is every corpus file
that converts and has a text layer on most pages, except the 117-page book
(it alone would decide the 2-process figure); the OCR mix is the files
whose pages are mostly scans. A page counts as scanned when pdfium finds
no character on it but an image (bench/seconds_per_page.py counts blank
pages as OCR pages too).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .client import ServiceClient, environment_header, load_average, print_header, unique_pdf_bytes
from .load import FULL_FILES
from .stack import CORPUS, Stack, bench_database_url, configure_django, recreate_database


def classify(pdf: Path) -> tuple[str, int]:
    """Return ("ocr" or "text", page count) by the share of scanned pages.

    A scanned page has no character in its text layer but an image. A page
    with neither is blank and counts as a text page, since it needs no OCR.
    """
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument(str(pdf))
    try:
        scanned = 0
        for page in document:
            text_page = page.get_textpage()
            if text_page.count_chars() == 0 and any(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE])):
                scanned += 1
            text_page.close()
            page.close()
        pages = len(document)
    finally:
        document.close()
    return ("ocr" if scanned * 2 > pages else "text"), pages


def run_mix(base_url: str, token: str, files: list[Path], repeat: int, tag: str) -> tuple[int, float, list[str]]:
    """Upload every file `repeat` times at once; return (pages, wall seconds, failures)."""
    uploads = [(pdf, index) for index in range(repeat) for pdf in files]

    def upload(item: tuple[Path, int]) -> str | None:
        pdf, index = item
        result = ServiceClient(base_url, token).upload(unique_pdf_bytes(pdf, f"{tag}-{index}"), pdf.name)
        return result.job_id

    started = time.time()
    with ThreadPoolExecutor(8) as pool:
        job_ids = list(pool.map(upload, uploads))
    client = ServiceClient(base_url, token)
    pages = 0
    failures = []
    for job_id in job_ids:
        if job_id is None:
            failures.append("upload rejected")
            continue
        job = client.wait_for_job(job_id, timeout=3600)
        if job["status"] != "SUCCEEDED":
            failures.append(f"{job_id} {job['status']} {job['error_code']}")
            continue
        pages += job["progress"]["pages_total"] or 0
    # The job rows give the exact end; the client noticed it a little later.
    from documents.models import IngestionJob

    last_end = max(
        IngestionJob.objects.filter(pk__in=[job_id for job_id in job_ids if job_id]).values_list("finished_at", flat=True)
    )
    return pages, last_end.timestamp() - started, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="uploads of each text-mix file")
    parser.add_argument("--ocr-repeat", type=int, default=6, help="uploads of each OCR-mix file (the mix is 3 pages)")
    parser.add_argument("--configs", nargs="+", default=["1x2", "2x2", "2x1"], help="worker processes x DOCLING_NUM_THREADS, such as 2x1")
    parser.add_argument("--database", default="docling_bench_throughput")
    arguments = parser.parse_args()

    mixes: dict[str, list[Path]] = {"text": [], "ocr": []}
    corpus_pages = {}
    for name in FULL_FILES:
        kind, pages = classify(CORPUS / name)
        mixes[kind].append(CORPUS / name)
        corpus_pages[name] = pages

    folder = Path(tempfile.mkdtemp(prefix="bench-throughput-"))
    database_url = bench_database_url(arguments.database)
    recreate_database(database_url)
    with Stack(folder, database_url, folder / "data") as stack:
        stack.start_infrastructure()
        configure_django(stack.env())
        from accounts.keys import create_api_key

        token = create_api_key("bench-throughput", name="bench").token
        base_url = stack.start_gunicorn()
        print_header(environment_header(database_url, stack.redis.version()))
        for kind, files in mixes.items():
            pages = sum(corpus_pages[pdf.name] for pdf in files)
            print(f"# {kind} mix: {len(files)} files, {pages} pages each round: {', '.join(pdf.name for pdf in files)}")

        rows = []
        for config in arguments.configs:
            processes, threads = (int(part) for part in config.split("x"))
            worker = stack.start_worker(
                f"throughput-{config}", concurrency=processes, DOCLING_NUM_THREADS=str(threads)
            )
            for kind, files in mixes.items():
                load_before = load_average()
                repeat = arguments.ocr_repeat if kind == "ocr" else arguments.repeat
                pages, seconds, failures = run_mix(base_url, token, files, repeat, f"{config}-{kind}")
                rows.append((processes, threads, kind, pages, seconds, load_before, failures))
                print(
                    f"{config} {kind}: {pages} pages in {seconds:.1f} s = {pages / seconds:.2f} pages/s "
                    f"(load before {load_before}) failures: {failures}",
                    flush=True,
                )
            worker.stop()
            stack.workers.pop(worker.name, None)

        print("\n| worker processes | threads each | mix | pages | seconds | pages/s | load average before |")
        print("|---|---|---|---|---|---|---|")
        for processes, threads, kind, pages, seconds, load_before, failures in rows:
            note = f" ({len(failures)} failed)" if failures else ""
            print(f"| {processes} | {threads} | {kind} | {pages} | {seconds:.1f} | {pages / seconds:.2f}{note} | {load_before} |")
        print(f"\n# load average at end: {load_average()}")


if __name__ == "__main__":
    main()
