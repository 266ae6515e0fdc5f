"""Build the conversion engine and scanner configuration from settings.

This is the only place that turns Django settings into the engine packages'
own config objects, so the engines themselves never import Django.
"""

from django.conf import settings

from conversion.interface import EngineConfig
from scanning import ClamdScanner, signature_set


def engine_config() -> EngineConfig:
    return EngineConfig(
        artifacts_path=settings.DOCLING_ARTIFACTS_PATH,
        layout_engine=settings.DOCLING_LAYOUT_ENGINE,
        ocr_engine=settings.DOCLING_OCR_ENGINE,
        tessdata_prefix=settings.TESSDATA_PREFIX,
        num_threads=settings.DOCLING_NUM_THREADS,
        tokenizer_path=settings.DOCLING_TOKENIZER_PATH,
    )


def scanner() -> ClamdScanner:
    # clamd rejects a stream longer than its StreamMaxLength, which
    # scripts/clamd.sh sizes from the same UPLOAD_MAX_SIZE_MB.
    return ClamdScanner(
        settings.CLAMD_ADDRESS,
        timeout_seconds=settings.CLAMD_TIMEOUT_SECONDS,
        stream_max_bytes=settings.UPLOAD_MAX_SIZE_BYTES,
    )


def current_signature_set() -> str:
    return signature_set(settings.CLAMD_DATABASE_DIR)
