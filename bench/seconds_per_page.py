"""Measure conversion seconds per page in a warm process.

Usage (from the repository root):

    .venv/bin/python bench/seconds_per_page.py [--corpus DIR] [--threads N] FILE.pdf ...

The engine is built and warmed up with one untimed conversion of the first
file, then each file is converted once and timed. A page with no characters
in its text layer (according to pdfium) counts as an OCR page. A file where
more than half of the pages are OCR pages counts as an OCR file. The summary
gives seconds per page for text files and OCR files separately. Options are the service defaults:
OCR on where needed, table structure off.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pypdfium2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conversion.interface import ConversionOptions, EngineConfig  # noqa: E402


def count_pages_without_text(pdf: Path) -> tuple[int, int]:
    """Return (page count, pages whose text layer has no characters)."""
    document = pypdfium2.PdfDocument(str(pdf))
    try:
        empty = 0
        for page in document:
            text_page = page.get_textpage()
            if text_page.count_chars() == 0:
                empty += 1
            text_page.close()
            page.close()
        return len(document), empty
    finally:
        document.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="PDF file names, relative to --corpus or absolute")
    parser.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    parser.add_argument("--threads", type=int, default=2, help="threads for the layout model and OCR")
    parser.add_argument("--layout", default="auto", help="layout engine: auto, heron or cdla")
    parser.add_argument("--artifacts-path", default=None, help="folder of Docling model weights")
    arguments = parser.parse_args()

    from conversion import docling_engine

    config = EngineConfig(
        artifacts_path=arguments.artifacts_path,
        layout_engine=arguments.layout,
        tessdata_prefix=os.environ.get("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata"),
        num_threads=arguments.threads,
    )
    engine = docling_engine.get_engine(config)
    pdfs = [Path(name) if Path(name).is_absolute() else Path(arguments.corpus) / name for name in arguments.files]
    options = ConversionOptions()

    with tempfile.TemporaryDirectory() as output:
        engine.convert(pdfs[0], options, Path(output) / "warm-up.json")
        totals = {"text": [0.0, 0], "ocr": [0.0, 0]}
        print(f"{'file':45} {'kind':5} {'pages':>5} {'seconds':>8} {'s/page':>7}")
        for pdf in pdfs:
            page_count, pages_without_text = count_pages_without_text(pdf)
            kind = "ocr" if pages_without_text * 2 > page_count else "text"
            started = time.perf_counter()
            result = engine.convert(pdf, options, Path(output) / f"{pdf.stem}.json")
            seconds = time.perf_counter() - started
            totals[kind][0] += seconds
            totals[kind][1] += result.page_count
            print(f"{pdf.name:45} {kind:5} {result.page_count:5} {seconds:8.2f} {seconds / result.page_count:7.3f}")

    all_seconds = sum(seconds for seconds, _ in totals.values())
    all_pages = sum(pages for _, pages in totals.values())
    for kind, (seconds, pages) in totals.items():
        if pages:
            print(f"{kind} files: {pages} pages, {seconds:.2f} s, {seconds / pages:.3f} s/page")
    print(f"all files: {all_pages} pages, {all_seconds:.2f} s, {all_seconds / all_pages:.3f} s/page")
    print(f"layout={engine.layout_engine} ocr={config.ocr_engine} threads={config.num_threads} cpus={os.cpu_count()}")


if __name__ == "__main__":
    main()
