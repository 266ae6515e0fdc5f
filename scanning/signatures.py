"""Classify the signature database folder that clamd loads."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

SignatureSet = Literal["official", "test-only", "custom", "none"]

# Files that scripts/clamd.sh writes when freshclam cannot download the
# official database. Keep the names in sync with TEST_SIGNATURE_BASENAME there.
TEST_SIGNATURE_FILES = frozenset({"docling-service-test.hdb", "docling-service-test.ndb"})

# Suffixes of the files clamd loads from its database folder, from CLI_DBEXT
# in libclamav/readdb.h (ClamAV 1.4).
_DATABASE_SUFFIXES = frozenset(
    {
        ".db", ".hdb", ".hdu", ".fp", ".mdb", ".mdu", ".hsb", ".hsu", ".sfp",
        ".msb", ".msu", ".ndb", ".ndu", ".ldb", ".ldu", ".sdb", ".zmd", ".rmd",
        ".pdb", ".gdb", ".wdb", ".cbc", ".ftm", ".cfg", ".cvd", ".cld", ".cud",
        ".cdb", ".cat", ".crb", ".idb", ".ioc", ".yar", ".yara", ".pwdb", ".ign",
        ".ign2", ".imp",
    }
)  # fmt: skip


def signature_set(database_dir: str | os.PathLike[str]) -> SignatureSet:
    """Classify the signature files in clamd's database folder.

    Returns "official" when the folder contains both main and daily databases
    (.cvd or .cld) as freshclam downloads them, "test-only" when it contains
    only the project's test signatures, "custom" for any other set of
    signature files, and "none" when it contains no signature file or does not
    exist. Other files, such as freshclam.dat, are ignored.
    """
    folder = Path(database_dir)
    if not folder.is_dir():
        return "none"

    names = {
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and entry.suffix.lower() in _DATABASE_SUFFIXES
    }
    if not names:
        return "none"

    stems = {Path(name).stem for name in names if Path(name).suffix.lower() in {".cvd", ".cld"}}
    if {"main", "daily"} <= stems:
        return "official"
    if names <= TEST_SIGNATURE_FILES:
        return "test-only"
    return "custom"
