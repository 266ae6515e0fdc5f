"""Build hostile PDFs for the tests, byte by byte, so none needs to be stored."""

from __future__ import annotations

import zlib
from pathlib import Path


def build_pdf(objects: list[bytes], root: int = 1) -> bytes:
    """Serialise numbered objects (1-based, in order) with a valid xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


TEXT_PAGE = stream(b"", b"BT /F1 12 Tf 72 720 Td (Hello) Tj ET")
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def simple_pdf(media_box: bytes = b"[0 0 612 792]") -> bytes:
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox " + media_box
        + b" /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        TEXT_PAGE,
        FONT,
    ])


def huge_page() -> bytes:
    """One page of 200 × 200 inches (14,400 points, the PDF 1.6 maximum)."""
    return simple_pdf(b"[0 0 14400 14400]")


def huge_image(side: int = 50_000) -> bytes:
    """A page drawing an image that declares side × side pixels in a tiny stream."""
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /XObject << /Im1 5 0 R >> >> >>",
        stream(b"", b"q 612 0 0 792 0 0 cm /Im1 Do Q"),
        stream(
            b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray"
            b" /BitsPerComponent 8 /Filter /FlateDecode" % (side, side),
            zlib.compress(b"\0" * 1024),
        ),
    ])


def cyclic_page_tree() -> bytes:
    """A page tree whose inner node lists itself among its kids."""
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 2 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        TEXT_PAGE,
        FONT,
    ])


def many_blank_pages(count: int = 5000) -> bytes:
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(count))
    pages = [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>"] * count
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
        *pages,
    ])


def deflate_bomb(inflated_bytes: int = 4 * 1024**3) -> bytes:
    """A metadata stream that inflates, through two Flate layers, to inflated_bytes.

    The file stays small (a few kilobytes): zeros compress about 1000:1, and
    the compressed zeros compress well again.
    """
    inner = zlib.compressobj(1)
    block = b"\0" * (16 * 1024 * 1024)
    parts = [inner.compress(block) for _ in range(inflated_bytes // len(block))]
    parts.append(inner.flush())
    once = b"".join(parts)
    twice = zlib.compress(once, 9)
    return build_pdf([
        b"<< /Type /Catalog /Pages 2 0 R /Metadata 6 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        TEXT_PAGE,
        FONT,
        stream(b"/Type /Metadata /Subtype /XML /Filter [/FlateDecode /FlateDecode]", twice),
    ])


def write_all(folder: Path) -> dict[str, Path]:
    """Write every hostile PDF into folder; return name -> path."""
    files = {
        # Below clamd's MaxFileSize (so it reaches the converter) but far
        # above a 1 GiB conversion cap.
        "deflate_bomb.pdf": deflate_bomb(800 * 1024**2),
        # Past clamd's MaxFileSize, so the scan stops it.
        "deflate_bomb_large.pdf": deflate_bomb(4 * 1024**3),
        "huge_image.pdf": huge_image(),
        "cyclic_page_tree.pdf": cyclic_page_tree(),
        "many_blank_pages.pdf": many_blank_pages(),
        "huge_page.pdf": huge_page(),
    }
    paths = {}
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths[name] = path
    return paths
