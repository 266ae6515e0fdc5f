"""Model checks, the CDLA detector, chunking and the Docling plugin registration."""

from __future__ import annotations

from pathlib import Path

import pypdfium2
import pytest

from conversion import cdla_layout, docling_engine
from conversion.interface import EngineConfig
from conversion.tests.conftest import TESSDATA_PREFIX, Converted, corpus_pdf


def test_check_models_accepts_cdla_config(engine_config: EngineConfig) -> None:
    ok, detail = docling_engine.check_models(engine_config)
    assert ok, detail
    assert "layout=cdla" in detail


def test_check_models_rejects_heron_without_artifacts() -> None:
    ok, detail = docling_engine.check_models(EngineConfig(layout_engine="heron", tessdata_prefix=TESSDATA_PREFIX))
    assert not ok
    assert "artifacts_path" in detail


def test_check_models_rejects_missing_tessdata(tmp_path: Path) -> None:
    ok, detail = docling_engine.check_models(EngineConfig(layout_engine="cdla", tessdata_prefix=str(tmp_path)))
    assert not ok
    assert "eng.traineddata" in detail


def test_auto_layout_picks_heron_when_present(tmp_path: Path) -> None:
    assert docling_engine.resolve_layout_engine(EngineConfig(artifacts_path=str(tmp_path))) == "cdla"
    (tmp_path / docling_engine.HERON_MODEL_FOLDER).mkdir()
    assert docling_engine.resolve_layout_engine(EngineConfig(artifacts_path=str(tmp_path))) == "heron"


def test_plugin_registers_cdla_layout_engine() -> None:
    from docling.models.factories import get_layout_factory, get_ocr_factory

    assert docling_engine.CdlaLayoutOptions.kind in get_layout_factory(allow_external_plugins=True).registered_kind
    assert docling_engine.LineTesseractOcrOptions.kind in get_ocr_factory(allow_external_plugins=True).registered_kind


def test_every_cdla_class_has_docling_label() -> None:
    assert set(docling_engine.CDLA_TO_DOCLING_LABEL) == set(cdla_layout.CLASS_NAMES)


def test_cdla_detector_finds_text_block() -> None:
    document = pypdfium2.PdfDocument(str(corpus_pdf("born_digital_lorem_1p.pdf")))
    try:
        image = document[0].render(scale=1.0).to_pil()
    finally:
        document.close()
    detector = cdla_layout.CdlaDetector(cdla_layout.find_model_path(), num_threads=1, score_threshold=0.5)
    detections = detector.detect(image)
    assert detections[0].label == "text"
    assert detections[0].score > 0.9
    assert 0 <= detections[0].left < detections[0].right <= image.width
    assert 0 <= detections[0].top < detections[0].bottom <= image.height


@pytest.mark.parametrize("strategy", ["hierarchical", "hybrid"])
def test_chunk_output_shape(redbook: Converted, strategy: str) -> None:
    chunks = docling_engine.chunk(redbook.document, strategy=strategy, max_tokens=256, merge_peers=True)
    assert len(chunks) > 10
    assert [chunk["chunk_id"] for chunk in chunks] == [str(index) for index in range(len(chunks))]
    for chunk in chunks:
        assert set(chunk) == {"chunk_id", "text", "context_text", "metadata"}
        assert chunk["text"]
        assert chunk["text"] in chunk["context_text"]
        assert set(chunk["metadata"]) == {"pages", "headings", "element_types"}
        assert chunk["metadata"]["pages"] == sorted(chunk["metadata"]["pages"])
        assert all(1 <= page <= 18 for page in chunk["metadata"]["pages"])
        assert chunk["metadata"]["element_types"]
    assert any(chunk["metadata"]["headings"] for chunk in chunks)


def test_hybrid_chunks_fit_token_limit(redbook: Converted) -> None:
    chunks = docling_engine.chunk(redbook.document, strategy="hybrid", max_tokens=128, merge_peers=False)
    tokenizer = docling_engine._tokenizer(None, 128)
    assert max(tokenizer.count_tokens(chunk["context_text"]) for chunk in chunks) <= 128


def test_chunk_rejects_unknown_strategy(lorem: Converted) -> None:
    with pytest.raises(ValueError, match="Invalid chunking strategy"):
        docling_engine.chunk(lorem.document, strategy="sentences")
