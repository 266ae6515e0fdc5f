"""Error codes for inputs and environments that cannot be converted."""

from __future__ import annotations

from pathlib import Path

import pytest

from conversion import docling_engine
from conversion.interface import ConversionError, ConversionOptions, EngineConfig, ErrorCode
from conversion.tests.conftest import TESSDATA_PREFIX, corpus_pdf


def convert_error(engine, pdf: Path, tmp_path: Path, options: ConversionOptions | None = None) -> ConversionError:
    with pytest.raises(ConversionError) as caught:
        engine.convert(pdf, options or ConversionOptions(), tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()
    return caught.value


def test_user_password_raises_encrypted(engine, tmp_path: Path) -> None:
    error = convert_error(engine, corpus_pdf("encrypted_user_password_rc4.pdf"), tmp_path)
    assert error.error_code == ErrorCode.PDF_ENCRYPTED


def test_truncated_pdf_raises_corrupt(engine, tmp_path: Path) -> None:
    # pdfium cannot open this file (no trailer or xref), and the service
    # trusts pdfium's verdict, so it is rejected rather than partly converted.
    error = convert_error(engine, corpus_pdf("truncated_half_latex_two_column.pdf"), tmp_path)
    assert error.error_code == ErrorCode.PDF_CORRUPT


def test_png_renamed_raises_unsupported_media_type(engine, tmp_path: Path) -> None:
    error = convert_error(engine, corpus_pdf("png_renamed_as.pdf"), tmp_path)
    assert error.error_code == ErrorCode.UNSUPPORTED_MEDIA_TYPE
    assert error.details["detected_signature"].startswith("89504e47")


def test_empty_file_raises_unsupported_media_type(engine, tmp_path: Path) -> None:
    error = convert_error(engine, corpus_pdf("empty_zero_bytes.pdf"), tmp_path)
    assert error.error_code == ErrorCode.UNSUPPORTED_MEDIA_TYPE
    assert "empty" in error.message


def test_max_pages_breach_names_both_counts(engine, tmp_path: Path) -> None:
    error = convert_error(engine, corpus_pdf("ibm_redbook_18p_tables.pdf"), tmp_path, ConversionOptions(max_pages=5))
    assert error.error_code == ErrorCode.PAGE_LIMIT_EXCEEDED
    assert "18" in error.message
    assert "5" in error.message
    assert error.details == {"page_count": 18, "max_pages": 5}


def test_file_too_large_names_both_sizes(engine, tmp_path: Path) -> None:
    pdf = corpus_pdf("born_digital_lorem_1p.pdf")
    error = convert_error(engine, pdf, tmp_path, ConversionOptions(max_file_size_bytes=1000))
    assert error.error_code == ErrorCode.FILE_TOO_LARGE
    assert str(pdf.stat().st_size) in error.message
    assert "1000" in error.message


def test_page_range_after_last_page_fails(engine, tmp_path: Path) -> None:
    error = convert_error(engine, corpus_pdf("born_digital_lorem_1p.pdf"), tmp_path, ConversionOptions(page_range=(3, 4)))
    assert error.error_code == ErrorCode.CONVERSION_FAILED
    assert error.details["page_count"] == 1


def test_table_structure_without_weights_raises_models_missing(engine, tmp_path: Path) -> None:
    options = ConversionOptions(do_table_structure=True)
    error = convert_error(engine, corpus_pdf("born_digital_lorem_1p.pdf"), tmp_path, options)
    assert error.error_code == ErrorCode.MODELS_MISSING
    assert error.details["model"] == "tableformer"


def test_heron_without_artifacts_raises_models_missing(tmp_path: Path) -> None:
    engine = docling_engine.get_engine(EngineConfig(layout_engine="heron", tessdata_prefix=TESSDATA_PREFIX))
    error = convert_error(engine, corpus_pdf("born_digital_lorem_1p.pdf"), tmp_path)
    assert error.error_code == ErrorCode.MODELS_MISSING


def test_heron_with_empty_artifacts_raises_models_missing(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    config = EngineConfig(artifacts_path=str(artifacts), layout_engine="heron", tessdata_prefix=TESSDATA_PREFIX)
    error = convert_error(docling_engine.get_engine(config), corpus_pdf("born_digital_lorem_1p.pdf"), tmp_path)
    assert error.error_code == ErrorCode.MODELS_MISSING
    assert str(artifacts) not in error.message


def test_docling_missing_model_error_maps_to_models_missing(tmp_path: Path) -> None:
    # Skip the file check so that Docling itself looks for the Heron model
    # in an empty artifacts_path and raises FileNotFoundError.
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    config = EngineConfig(artifacts_path=str(artifacts), layout_engine="heron", tessdata_prefix=TESSDATA_PREFIX)
    engine = docling_engine.DoclingEngine(config)
    engine._check_model_files = lambda key: None  # type: ignore[method-assign]
    error = convert_error(engine, corpus_pdf("born_digital_lorem_1p.pdf"), tmp_path)
    assert error.error_code == ErrorCode.MODELS_MISSING


def test_missing_ocr_language_raises_models_missing(engine, tmp_path: Path) -> None:
    options = ConversionOptions(ocr_languages=("xyz",))
    error = convert_error(engine, corpus_pdf("born_digital_lorem_1p.pdf"), tmp_path, options)
    assert error.error_code == ErrorCode.MODELS_MISSING
