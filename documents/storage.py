"""Paths under DATA_ROOT and atomic file writes.

Every stored path is built from ids (never from a client's file name) and
checked to stay under DATA_ROOT before use. A write that finds DATA_ROOT
full (ENOSPC, or EDQUOT under a quota) removes what it wrote and raises
StorageFull, a ServiceError with code STORAGE_FULL (HTTP 507).
"""

import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from django.conf import settings

from core.errors import ServiceError

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
# mkstemp creates files as 0600. In production Nginx reads DATA_ROOT/artifacts
# through a group ACL, which grants no more than the file's group bits, so
# stored files get group read.
STORED_FILE_MODE = 0o640
STORAGE_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class UnsafePathError(ValueError):
    pass


def is_storage_full(error: BaseException) -> bool:
    """Return True for an OSError that means the file system has no space (or quota) left."""
    return isinstance(error, OSError) and error.errno in STORAGE_FULL_ERRNOS


class StorageFull(ServiceError):
    """The error for a full DATA_ROOT. A request gets 507 STORAGE_FULL, and a task fails its job."""

    def __init__(self) -> None:
        super().__init__(
            "The server has no storage space left, so the file was not stored. "
            "Retry later; the operator must free space in DATA_ROOT.",
            error_code="STORAGE_FULL",
            status_code=507,
        )


@contextmanager
def raising_storage_full() -> Iterator[None]:
    """Turn ENOSPC and EDQUOT raised in the block into StorageFull."""
    try:
        yield
    except OSError as exc:
        if not is_storage_full(exc):
            raise
        logger.error("DATA_ROOT is full: %s", exc)
        raise StorageFull() from exc


def data_root() -> Path:
    return Path(settings.DATA_ROOT)


def resolve(relpath: str) -> Path:
    """Return the absolute path of a stored relative path, inside DATA_ROOT."""
    if not relpath:
        raise UnsafePathError("Empty storage path.")
    root = data_root().resolve()
    path = (root / relpath).resolve()
    if not path.is_relative_to(root):
        raise UnsafePathError("Storage path escapes DATA_ROOT.")
    return path


def quarantine_relpath(tenant_id: UUID, document_id: UUID) -> str:
    return f"uploads/quarantine/{tenant_id}/{document_id}.pdf"


def clean_relpath(tenant_id: UUID, document_id: UUID) -> str:
    return f"uploads/clean/{tenant_id}/{document_id}.pdf"


def artifact_dir_relpath(tenant_id: UUID, job_id: UUID) -> str:
    return f"artifacts/{tenant_id}/{job_id}"


def work_dir_relpath(tenant_id: UUID, job_id: UUID) -> str:
    """Folder for a job's intermediate files, kept between pipeline stages."""
    return f"work/{tenant_id}/{job_id}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> str:
    """Write data to a temporary file beside path, fsync, rename; return its sha256.

    On any failure the temporary file is removed and path is left as it was.
    """
    with raising_storage_full():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as tmp:
                os.fchmod(tmp.fileno(), STORED_FILE_MODE)
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)
    return hashlib.sha256(data).hexdigest()


def move_atomic(source: Path, target: Path) -> None:
    """Move a file within DATA_ROOT (one file system), fsyncing the new folder."""
    with raising_storage_full():
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def link_atomic(source: Path, target: Path) -> None:
    """Hard-link source at target, replacing target atomically if it exists."""
    with raising_storage_full():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.link.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)
