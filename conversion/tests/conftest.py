"""Fixtures that run real Docling once per test session.

Each corpus PDF that several tests read is converted once, here, and the
tests share the result. The corpus folder defaults to ../shared/corpus beside
the repository and can be moved with CONVERSION_TEST_CORPUS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conversion.interface import ConversionOptions, ConversionResult, EngineConfig

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(os.environ.get("CONVERSION_TEST_CORPUS", REPOSITORY_ROOT.parent / "shared" / "corpus"))
TESSDATA_PREFIX = os.environ.get("TESSDATA_PREFIX", "/usr/share/tesseract-ocr/5/tessdata")


def corpus_pdf(name: str) -> Path:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"corpus file {name} not found in {CORPUS}")
    return path


@dataclass
class Converted:
    result: ConversionResult
    document: Any
    progress: list[tuple[int, int]]


@pytest.fixture(scope="session")
def engine_config() -> EngineConfig:
    return EngineConfig(layout_engine="cdla", ocr_engine="tesseract", tessdata_prefix=TESSDATA_PREFIX, num_threads=2)


@pytest.fixture(scope="session")
def engine(engine_config: EngineConfig) -> Any:
    from conversion import docling_engine

    return docling_engine.get_engine(engine_config)


@pytest.fixture(scope="session")
def output_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("converted")


def _convert(engine: Any, output_folder: Path, name: str) -> Converted:
    from conversion import docling_engine

    progress: list[tuple[int, int]] = []
    result = engine.convert(
        corpus_pdf(name),
        ConversionOptions(),
        output_folder / f"{name}.json",
        progress_callback=lambda done, total: progress.append((done, total)),
    )
    return Converted(result, docling_engine.load_document(result.document_json_path), progress)


@pytest.fixture(scope="session")
def lorem(engine: Any, output_folder: Path) -> Converted:
    return _convert(engine, output_folder, "born_digital_lorem_1p.pdf")


@pytest.fixture(scope="session")
def scan(engine: Any, output_folder: Path) -> Converted:
    return _convert(engine, output_folder, "scan_skewed.pdf")


@pytest.fixture(scope="session")
def redbook(engine: Any, output_folder: Path) -> Converted:
    return _convert(engine, output_folder, "ibm_redbook_18p_tables.pdf")
