"""Compare the whole service with calling Docling directly, for the same PDFs and options.

Usage (from the repository root, as root or a user who can create databases):

    .venv/bin/python -m bench.overhead [--repeat 3] [--poll-ms 50] [FILE.pdf ...]

Service: the wall time from the start of the upload to the moment the
client sees the job SUCCEEDED (so every artifact is written), through
Gunicorn (deploy/gunicorn.conf.py), one warm Celery worker process and a
private clamd. The client waits with GET /v1/jobs/{id}?wait=30, or polls
every --poll-ms. Direct: in this process, a warm
`conversion.docling_engine.get_engine(...).convert(...)` with the same
options, then the same exports (Markdown, text, DocTags) and hybrid
chunking, each written to a file. Both keep the loaded models out of the
garbage collector's view (gc.freeze()). The two alternate per file
(A B, then B A) and each figure is the median of --repeat runs.

It also splits the service's time into upload, scan, convert, export,
chunk, the gaps between the five stage tasks and the time the client took
to see the end, from the job's stage timings and events.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .client import ServiceClient, environment_header, load_average, median, print_header
from .stack import CORPUS, Stack, bench_database_url, configure_django, recreate_database

DEFAULT_FILES = [
    "born_digital_lorem_1p.pdf",
    "code_and_formula_2p.pdf",
    "latex_two_column.pdf",
    "cjk_korean_4p.pdf",
    "scan_skewed.pdf",
    "sci_paper_tracemonkey_14p.pdf",
    "ibm_redbook_18p_tables.pdf",
]
# The service's default options; `force` makes every upload convert again.
SERVICE_OPTIONS: dict[str, Any] = {"force": True}


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def stage_breakdown(job: dict[str, Any], seen_at: float) -> dict[str, float]:
    """Split a finished job's time into stage times, task gaps and polling lag (ms).

    A task gap is the time from one stage's "finished" event (or the "Job
    queued" event) to the next stage's "started" event: the hand-off
    through the broker and the claim of the job row.
    """
    events: dict[str, float] = {}
    for event in job["events"]:
        events.setdefault(event["message"], parse_time(event["timestamp"]))
    finished = parse_time(job["finished_at"])
    gaps = 0.0
    previous_end = events["Job queued"]
    for stage in ("Scanning", "Converting", "Exporting", "Chunking", "Finalizing"):
        gaps += events[f"{stage} started"] - previous_end
        previous_end = events.get(f"{stage} finished", finished)
    return {
        "scan": float(job["scan_ms"] or 0),
        "convert": float(job["convert_ms"] or 0),
        "export": float(job["export_ms"] or 0),
        "chunk": float(job["chunk_ms"] or 0),
        "finalize": (finished - events["Finalizing started"]) * 1000,
        "task_gaps": gaps * 1000,
        "poll_lag": (seen_at - finished) * 1000,
    }


def run_service(client: ServiceClient, pdf: Path, poll_seconds: float) -> tuple[float, dict[str, float]]:
    data = pdf.read_bytes()
    started = time.perf_counter()
    wall_started = time.time()
    result = client.upload(data, pdf.name, SERVICE_OPTIONS)
    upload_end = time.time()
    if result.status != 201 or result.job_id is None:
        raise RuntimeError(f"Upload of {pdf.name} returned {result.status}: {result.body}")
    job = client.wait_for_job(result.job_id, timeout=600, poll_seconds=poll_seconds)
    seconds = time.perf_counter() - started
    seen_at = time.time()
    if job["status"] != "SUCCEEDED":
        raise RuntimeError(f"Job for {pdf.name} ended {job['status']}: {job['error_code']} {job['error_message']}")
    return seconds, {"upload": (upload_end - wall_started) * 1000, **stage_breakdown(job, seen_at)}


class DirectRunner:
    """Docling in this process, with the options and outputs of the service's pipeline."""

    def __init__(self, output: Path) -> None:
        from django.conf import settings

        from conversion.docling_engine import get_engine
        from core.engines import engine_config
        from documents.options import resolve_options

        self.output = output
        self.options = resolve_options(SERVICE_OPTIONS)
        self.tokenizer_path = settings.DOCLING_TOKENIZER_PATH
        self.engine = get_engine(engine_config())
        self.engine.warm_up()
        # As the service's conversion process does: without this, Python's
        # full collections walk the loaded models (0.3 s each) during the
        # timed conversions, and the service would look faster than Docling.
        gc.freeze()

    def run(self, pdf: Path) -> tuple[float, float]:
        """Convert, export and chunk `pdf`; return the total and the conversion seconds."""
        from django.conf import settings

        from conversion.docling_engine import chunk, export_doctags, export_markdown, export_text, load_document
        from conversion.interface import ConversionOptions

        options = self.options
        conversion_options = ConversionOptions(
            do_ocr=options["do_ocr"],
            ocr_languages=tuple(options["ocr_languages"]),
            force_full_page_ocr=options["force_full_page_ocr"],
            do_table_structure=options["do_table_structure"],
            table_mode=options.get("table_mode", "accurate"),
            max_pages=options["max_pages"],
            max_file_size_bytes=settings.UPLOAD_MAX_SIZE_BYTES,
        )
        started = time.perf_counter()
        json_path = self.output / "document.json"
        self.engine.convert(pdf, conversion_options, json_path, document_name=pdf.name)
        converted = time.perf_counter()
        document = load_document(json_path)
        (self.output / "document.md").write_text(export_markdown(document), encoding="utf-8")
        (self.output / "document.txt").write_text(export_text(document), encoding="utf-8")
        (self.output / "document.doctags.txt").write_text(export_doctags(document), encoding="utf-8")
        chunking = options["chunking"]
        chunks = chunk(
            document,
            strategy=chunking["strategy"],
            max_tokens=chunking["max_tokens"],
            merge_peers=chunking["merge_peers"],
            tokenizer_path=self.tokenizer_path,
        )
        data = json.dumps({"strategy": chunking["strategy"], "chunks": chunks}, ensure_ascii=False, indent=1)
        (self.output / "chunks.json").write_text(data, encoding="utf-8")
        return time.perf_counter() - started, converted - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", help=f"PDF names in --corpus (default: {len(DEFAULT_FILES)} files)")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each path per file")
    parser.add_argument(
        "--poll-ms", type=float, default=0,
        help="client polling interval in ms; 0 (the default) waits with GET /v1/jobs/{id}?wait=30",
    )
    parser.add_argument("--database", default="docling_bench_overhead", help="benchmark database (re-created)")
    parser.add_argument("--folder", type=Path, default=None, help="work folder (default: a new temporary one)")
    arguments = parser.parse_args()

    folder = arguments.folder or Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    pdfs = [arguments.corpus / name for name in (arguments.files or DEFAULT_FILES)]
    database_url = bench_database_url(arguments.database)
    recreate_database(database_url)
    stack = Stack(folder, database_url, folder / "data")
    with stack:
        stack.start_infrastructure()
        configure_django(stack.env())
        from accounts.keys import create_api_key

        token = create_api_key("bench-overhead", name="bench").token
        stack.start_worker("overhead-worker")
        base_url = stack.start_gunicorn()
        client = ServiceClient(base_url, token)
        (folder / "direct").mkdir(parents=True, exist_ok=True)
        direct = DirectRunner(folder / "direct")

        print_header(environment_header(database_url, stack.redis.version()))
        waiting = f"polls every {arguments.poll_ms:g} ms" if arguments.poll_ms else "GET /v1/jobs/{id}?wait=30"
        print(f"# client: {waiting}; repeat: {arguments.repeat}; folder: {folder}")
        # One untimed run of each path loads the tokenizer and warms caches.
        run_service(client, pdfs[0], arguments.poll_ms / 1000)
        direct.run(pdfs[0])

        rows = []
        for pdf in pdfs:
            service_times: list[float] = []
            direct_times: list[float] = []
            direct_convert_times: list[float] = []
            breakdowns: list[dict[str, float]] = []
            for repetition in range(arguments.repeat):
                order = ("service", "direct") if repetition % 2 == 0 else ("direct", "service")
                for path in order:
                    if path == "service":
                        seconds, breakdown = run_service(client, pdf, arguments.poll_ms / 1000)
                        service_times.append(seconds)
                        breakdowns.append(breakdown)
                    else:
                        total, converting = direct.run(pdf)
                        direct_times.append(total)
                        direct_convert_times.append(converting)
            parts = {key: median([b[key] for b in breakdowns]) for key in breakdowns[0]}
            row = {
                "file": pdf.name,
                "service_s": median(service_times),
                "direct_s": median(direct_times),
                "direct_convert_s": median(direct_convert_times),
                "parts_ms": parts,
            }
            row["ratio"] = row["service_s"] / row["direct_s"]
            rows.append(row)
            print(
                f"{pdf.name:36} service {row['service_s']:7.3f} s  direct {row['direct_s']:7.3f} s  "
                f"ratio {row['ratio']:.3f}  direct convert {row['direct_convert_s']:.3f} s  "
                + " ".join(f"{key}={value:.0f}" for key, value in parts.items()),
                flush=True,
            )

        total_service = sum(row["service_s"] for row in rows)
        total_direct = sum(row["direct_s"] for row in rows)
        print()
        print("| file | service (s) | direct (s) | ratio | direct convert (ms) | upload | scan | convert | export | chunk | finalize | task gaps | poll lag |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in rows:
            parts = row["parts_ms"]
            print(
                f"| {row['file']} | {row['service_s']:.3f} | {row['direct_s']:.3f} | {row['ratio']:.3f} | "
                f"{row['direct_convert_s'] * 1000:.0f} | "
                + " | ".join(
                    f"{parts[key]:.0f}"
                    for key in ("upload", "scan", "convert", "export", "chunk", "finalize", "task_gaps", "poll_lag")
                )
                + " |"
            )
        print(f"| all files | {total_service:.3f} | {total_direct:.3f} | {total_service / total_direct:.3f} | | | | | | | | | |")
        print(f"# stage columns are medians in ms; load average at end: {load_average()}")
    sys.exit(0)


if __name__ == "__main__":
    main()
