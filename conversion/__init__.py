"""PDF conversion with Docling, behind a small interface that does not import Docling.

``conversion.interface`` contains the configuration, option, result and error
types. ``conversion.docling_engine`` does the work and is the only module
that imports Docling, so import it only where conversions run.
"""

from conversion.interface import (
    ConversionError,
    ConversionOptions,
    ConversionResult,
    EngineConfig,
    ErrorCode,
)

__all__ = ["ConversionError", "ConversionOptions", "ConversionResult", "EngineConfig", "ErrorCode"]
