"""Structure checks with pypdf on generated PDFs; no Docling involved."""

from pathlib import Path

import pytest

from conversion.interface import ConversionError
from conversion.pdf_checks import check_structure
from conversion.tests import hostile_pdfs

LIMITS = {"max_pages": 1000, "max_page_side_inches": 100, "max_image_pixels": 200_000_000}


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "file.pdf"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (hostile_pdfs.huge_page, "PAGE_TOO_LARGE"),
        (hostile_pdfs.huge_image, "IMAGE_TOO_LARGE"),
        (hostile_pdfs.cyclic_page_tree, "PDF_CORRUPT"),
        (hostile_pdfs.many_blank_pages, "PAGE_LIMIT_EXCEEDED"),
    ],
)
def test_hostile_structure_rejected(tmp_path: Path, build, code: str) -> None:
    with pytest.raises(ConversionError) as caught:
        check_structure(write(tmp_path, build()), **LIMITS)
    assert caught.value.error_code == code


def test_limit_message_names_value_and_limit(tmp_path: Path) -> None:
    with pytest.raises(ConversionError) as caught:
        check_structure(write(tmp_path, hostile_pdfs.huge_page()), **LIMITS)
    assert "200 × 200 inches" in caught.value.message
    assert "100 inches" in caught.value.message


def test_simple_pdf_passes(tmp_path: Path) -> None:
    check_structure(write(tmp_path, hostile_pdfs.simple_pdf()), **LIMITS)


def test_checks_can_be_turned_off(tmp_path: Path) -> None:
    check_structure(
        write(tmp_path, hostile_pdfs.huge_image()),
        max_pages=None, max_page_side_inches=None, max_image_pixels=None,
    )


def test_deflate_bomb_is_not_decoded(tmp_path: Path) -> None:
    """The metadata stream is never inflated, so the check is instant."""
    import resource
    import time

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    check_structure(write(tmp_path, hostile_pdfs.deflate_bomb(256 * 1024**2)), **LIMITS)
    assert time.monotonic() - started < 2
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 64 * 1024


@pytest.mark.parametrize(
    "name",
    ["born_digital_lorem_1p.pdf", "ibm_redbook_18p_tables.pdf", "broken_xref_keyword_missing.pdf",
     "truncated_half_latex_two_column.pdf", "encrypted_user_password_rc4.pdf", "header_leading_junk.pdf"],
)
def test_corpus_files_pass_or_leave_it_to_pdfium(name: str) -> None:
    path = Path(__file__).resolve().parents[3] / "shared" / "corpus" / name
    if not path.exists():
        pytest.skip(f"{path} is not present")
    check_structure(path, **LIMITS)
