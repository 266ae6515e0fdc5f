"""Cheap checks of a PDF's structure before Docling (and pdfium) open it.

pypdf reads the cross-reference table, the page tree, page boxes and image
dictionaries lazily, without decoding content or metadata streams. So a
file whose streams are decompression bombs, whose pages claim absurd sizes
or whose images claim billions of pixels is rejected here, cheaply, before
pdfium would try to allocate for it. pypdf's verdict is only used to reject:
a file pypdf cannot read is left for pdfium to judge, because pdfium's page
count is the one the service trusts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError
from pypdf.generic import DictionaryObject, IndirectObject

from conversion.interface import ConversionError, ErrorCode

logger = logging.getLogger(__name__)

POINTS_PER_INCH = 72
# Form XObjects can contain images and other forms; deeper nesting than this
# is not followed.
MAX_FORM_DEPTH = 8
# Real page trees are a few levels deep; this allows for odd but valid ones.
MAX_PAGE_TREE_DEPTH = 64


def check_structure(
    path: Path,
    max_pages: int | None,
    max_page_side_inches: float | None,
    max_image_pixels: int | None,
) -> None:
    """Raise PAGE_LIMIT_EXCEEDED, PAGE_TOO_LARGE, IMAGE_TOO_LARGE or PDF_CORRUPT."""
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return  # pdfium reports the password error with its own code.
        check_page_tree(reader)
        page_count = len(reader.pages)
    except RecursionError as error:
        raise ConversionError(
            ErrorCode.PDF_CORRUPT,
            "The PDF's page tree is cyclic or nested too deeply to read.",
        ) from error
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        logger.info("pypdf could not read the structure (%s); pdfium decides", type(error).__name__)
        return

    if max_pages is not None and page_count > max_pages:
        raise ConversionError(
            ErrorCode.PAGE_LIMIT_EXCEEDED,
            f"The PDF has {page_count} pages, more than the limit of {max_pages} pages.",
            {"page_count": page_count, "max_pages": max_pages},
        )
    for number in range(page_count):
        try:
            page = reader.pages[number]
            if max_page_side_inches is not None:
                check_page_size(page, number + 1, max_page_side_inches)
            if max_image_pixels is not None:
                check_images(page.get("/Resources"), number + 1, max_image_pixels, 0, set())
        except ConversionError:
            raise
        except RecursionError as error:
            raise ConversionError(
                ErrorCode.PDF_CORRUPT,
                f"Page {number + 1} of the PDF has resources nested too deeply to read.",
                {"page": number + 1},
            ) from error
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError) as error:
            logger.info("pypdf could not check page %s (%s)", number + 1, type(error).__name__)


def check_page_tree(reader: PdfReader) -> None:
    """Walk the page tree without recursion; reject cycles and absurd depth.

    Readers differ on such trees (some loop, some give up, some count pages
    twice), so the service rejects them outright.
    """
    root = resolve(reader.trailer["/Root"]).get("/Pages")
    if not isinstance(root, IndirectObject):
        return
    seen: set[int] = set()
    stack: list[tuple[IndirectObject, int]] = [(root, 0)]
    while stack:
        reference, depth = stack.pop()
        if reference.idnum in seen:
            raise ConversionError(
                ErrorCode.PDF_CORRUPT,
                "The PDF's page tree is cyclic: a node is its own ancestor or appears twice.",
                {"object": reference.idnum},
            )
        seen.add(reference.idnum)
        if depth > MAX_PAGE_TREE_DEPTH:
            raise ConversionError(
                ErrorCode.PDF_CORRUPT,
                f"The PDF's page tree is nested more than {MAX_PAGE_TREE_DEPTH} levels deep.",
                {"max_depth": MAX_PAGE_TREE_DEPTH},
            )
        node = resolve(reference)
        if not isinstance(node, DictionaryObject) or node.get("/Type") == "/Page":
            continue
        for kid in resolve(node.get("/Kids")) or []:
            if isinstance(kid, IndirectObject):
                stack.append((kid, depth + 1))


def check_page_size(page: Any, page_number: int, max_side_inches: float) -> None:
    box = page.mediabox
    user_unit = float(page.get("/UserUnit", 1) or 1)
    width = abs(float(box.width)) * user_unit / POINTS_PER_INCH
    height = abs(float(box.height)) * user_unit / POINTS_PER_INCH
    if max(width, height) > max_side_inches:
        raise ConversionError(
            ErrorCode.PAGE_TOO_LARGE,
            f"Page {page_number} is {width:.0f} × {height:.0f} inches, larger than the limit "
            f"of {max_side_inches:g} inches a side.",
            {"page": page_number, "width_inches": round(width, 1), "height_inches": round(height, 1),
             "max_page_side_inches": max_side_inches},
        )


def check_images(
    resources: Any, page_number: int, max_pixels: int, depth: int, seen: set[int]
) -> None:
    """Check the declared size of every image the page's resources name."""
    resources = resolve(resources)
    if not isinstance(resources, DictionaryObject) or depth > MAX_FORM_DEPTH:
        return
    xobjects = resolve(resources.get("/XObject"))
    if not isinstance(xobjects, DictionaryObject):
        return
    for name, reference in xobjects.items():
        if isinstance(reference, IndirectObject):
            if reference.idnum in seen:
                continue
            seen.add(reference.idnum)
        xobject = resolve(reference)
        if not isinstance(xobject, DictionaryObject):
            continue
        subtype = xobject.get("/Subtype")
        if subtype == "/Image":
            width = int(resolve(xobject.get("/Width", 0)) or 0)
            height = int(resolve(xobject.get("/Height", 0)) or 0)
            if width * height > max_pixels:
                raise ConversionError(
                    ErrorCode.IMAGE_TOO_LARGE,
                    f"An image on page {page_number} declares {width} × {height} pixels, more "
                    f"than the limit of {max_pixels} pixels.",
                    {"page": page_number, "width": width, "height": height, "max_image_pixels": max_pixels},
                )
        elif subtype == "/Form":
            check_images(xobject.get("/Resources"), page_number, max_pixels, depth + 1, seen)


def resolve(value: Any) -> Any:
    return value.get_object() if isinstance(value, IndirectObject) else value
