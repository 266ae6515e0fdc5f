"""Virus scanning of uploads with clamd.

Nothing in this package imports Django, so settings and readiness checks can
import it at start-up.
"""

from .clamd import (
    DEFAULT_CHUNK_SIZE,
    ClamdScanner,
    ScanFailed,
    ScannerUnavailable,
    ScanResult,
    TcpAddress,
    UnixAddress,
    parse_address,
)
from .signatures import TEST_SIGNATURE_FILES, SignatureSet, signature_set

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "TEST_SIGNATURE_FILES",
    "ClamdScanner",
    "ScanFailed",
    "ScanResult",
    "ScannerUnavailable",
    "SignatureSet",
    "TcpAddress",
    "UnixAddress",
    "parse_address",
    "signature_set",
]
