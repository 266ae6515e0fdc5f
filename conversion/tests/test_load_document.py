"""load_document keeps the last document it loaded while its file is unchanged."""

from pathlib import Path

from docling_core.types.doc import DocItemLabel, DoclingDocument

from conversion import docling_engine
from conversion.docling_engine import load_document, write_document_json


def write(path: Path, text: str) -> None:
    document = DoclingDocument(name="report")
    document.add_text(label=DocItemLabel.PARAGRAPH, text=text)
    write_document_json(document, path)


def test_unchanged_file_returns_same_document(tmp_path: Path) -> None:
    path = tmp_path / "docling.json"
    write(path, "first")
    first = load_document(path)
    assert load_document(path) is first


def test_rewritten_file_is_loaded_again(tmp_path: Path) -> None:
    path = tmp_path / "docling.json"
    write(path, "first")
    first = load_document(path)
    write(path, "second")
    second = load_document(path)
    assert second is not first
    assert second.texts[0].text == "second"


def test_large_file_is_not_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(docling_engine, "LOADED_DOCUMENT_CACHE_MAX_BYTES", 10)
    path = tmp_path / "docling.json"
    write(path, "first")
    assert load_document(path) is not load_document(path)
