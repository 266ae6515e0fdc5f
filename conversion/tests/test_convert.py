"""Conversions of real corpus PDFs with real Docling and the CDLA layout engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conversion import docling_engine
from conversion.interface import ConversionOptions
from conversion.tests.conftest import REPOSITORY_ROOT, TESSDATA_PREFIX, Converted, corpus_pdf


def test_born_digital_contains_lorem_ipsum(lorem: Converted) -> None:
    markdown = docling_engine.export_markdown(lorem.document)
    assert "Lorem ipsum dolor sit amet" in markdown
    assert lorem.result.page_count == 1
    assert lorem.result.layout_engine == "cdla"
    assert lorem.result.ocr_engine == "tesseract"
    assert lorem.result.recovered is False


def test_born_digital_reports_versions(lorem: Converted) -> None:
    assert lorem.result.docling_version == docling_engine.versions()["docling"]
    assert lorem.result.docling_core_version == docling_engine.versions()["docling-core"]


def test_progress_callback_reaches_total(redbook: Converted) -> None:
    assert redbook.progress[-1] == (18, 18)
    assert [done for done, _ in redbook.progress] == list(range(1, 19))


def test_scan_ocr_yields_words(scan: Converted) -> None:
    text = docling_engine.export_text(scan.document)
    for phrase in ("LinnSequencer", "MIDI", "Recording a Sequence", "synchronization", "Oxnard Street"):
        assert phrase in text
    assert len(text.split()) > 500


def test_scan_text_not_hidden_in_picture(scan: Converted) -> None:
    markdown = docling_engine.export_markdown(scan.document)
    assert "professional musician" in markdown
    assert "Optional remote control" in markdown


def test_scan_bullets_become_list_items(scan: Converted) -> None:
    markdown = docling_engine.export_markdown(scan.document)
    assert "\n* Optional remote control." in markdown


def test_redbook_markdown_has_headings(redbook: Converted) -> None:
    markdown = docling_engine.export_markdown(redbook.document)
    assert "## Chapter 1. Securing and protecting IBM DB2 data" in markdown
    assert "Row and Column Access Control" in markdown
    assert redbook.result.page_count == 18


def test_json_is_sorted_utf8(lorem: Converted) -> None:
    raw = Path(lorem.result.document_json_path).read_bytes()
    assert raw == docling_engine.document_json_bytes(lorem.document)
    data = json.loads(raw)
    assert list(data) == sorted(data)


def test_json_write_leaves_no_temporary_files(lorem: Converted) -> None:
    folder = Path(lorem.result.document_json_path).parent
    assert not [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_owner_only_encrypted_converts(engine, output_folder: Path) -> None:
    result = engine.convert(
        corpus_pdf("encrypted_owner_only_aes128.pdf"), ConversionOptions(), output_folder / "owner_only.json"
    )
    document = docling_engine.load_document(result.document_json_path)
    assert result.page_count == 1
    # CDLA labels this page's only line a page header, which exports skip,
    # so look at every text item of the document.
    assert "pdf encryption test" in " ".join(item.text for item in document.texts)


def test_page_range_converts_selected_pages(engine, output_folder: Path) -> None:
    result = engine.convert(
        corpus_pdf("sci_paper_tracemonkey_14p.pdf"),
        ConversionOptions(do_ocr=False, page_range=(2, 3)),
        output_folder / "tracemonkey_2_3.json",
    )
    document = docling_engine.load_document(result.document_json_path)
    assert result.page_count == 2
    assert sorted(document.pages) == [2, 3]
    assert result.ocr_engine == "none"


_EXPORT_SCRIPT = """
import sys
from pathlib import Path
from conversion import docling_engine
from conversion.interface import ConversionOptions, EngineConfig

config = EngineConfig(layout_engine="cdla", tessdata_prefix=sys.argv[1], num_threads=2)
engine = docling_engine.get_engine(config)
output = Path(sys.argv[2])
for pdf in sys.argv[3:]:
    name = Path(pdf).name
    result = engine.convert(pdf, ConversionOptions(), output / f"{name}.json")
    document = docling_engine.load_document(result.document_json_path)
    for export_format in ("markdown", "text", "doctags"):
        (output / f"{name}.{export_format}").write_bytes(docling_engine.export_bytes(document, export_format))
"""


def test_exports_identical_across_processes(lorem: Converted, scan: Converted, tmp_path: Path) -> None:
    converted = {"born_digital_lorem_1p.pdf": lorem, "scan_skewed.pdf": scan}
    subprocess.run(
        [sys.executable, "-c", _EXPORT_SCRIPT, TESSDATA_PREFIX, str(tmp_path), *(str(corpus_pdf(name)) for name in converted)],
        cwd=REPOSITORY_ROOT,
        check=True,
        timeout=300,
    )
    for name, here in converted.items():
        assert (tmp_path / f"{name}.json").read_bytes() == Path(here.result.document_json_path).read_bytes(), name
        for export_format in ("markdown", "text", "doctags"):
            expected = docling_engine.export_bytes(here.document, export_format)
            assert (tmp_path / f"{name}.{export_format}").read_bytes() == expected, (name, export_format)
