"""Stream an uploaded PDF straight into the quarantine folder.

Django's default handlers keep small files in memory and copy big ones to
/tmp. This handler writes each chunk to a temporary file beside its final
quarantine path, hashing and counting as it goes, and stops reading as soon
as the size limit is passed, so the web process never holds the file.

When DATA_ROOT fills up mid-upload, the partial file is deleted at once and
the rest of the body is read and dropped, so that the client (or Nginx in
front) receives the 507 STORAGE_FULL answer instead of a reset connection.
"""

import hashlib
import os
from pathlib import Path
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, SkipFile

from core.errors import ServiceError

from .storage import StorageFull, is_storage_full

UPLOAD_FIELD = "file"
HEAD_BYTES = 1024


class StoredUpload(UploadedFile):
    """An upload already written to disk, with its digest and first bytes."""

    def __init__(self, *, name: str, path: Path, size: int, sha256: str, head: bytes, content_type: str):
        super().__init__(file=None, name=name, content_type=content_type, size=size)
        self.path = path
        self.sha256 = sha256
        self.head = head

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class QuarantineUploadHandler(FileUploadHandler):
    chunk_size = 64 * 1024

    def __init__(self, partial_path: Path, max_bytes: int) -> None:
        super().__init__()
        self.partial_path = partial_path
        self.max_bytes = max_bytes
        self._handle: Any = None
        self._digest = hashlib.sha256()
        self._head = b""
        self._size = 0
        self._seen_file = False
        self._storage_error: ServiceError | None = None

    def new_file(self, field_name: str, file_name: str, *args: Any, **kwargs: Any) -> None:
        super().new_file(field_name, file_name, *args, **kwargs)
        if field_name != UPLOAD_FIELD or self._seen_file:
            raise SkipFile()
        self._seen_file = True
        try:
            self.partial_path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.partial_path.open("wb")
        except OSError as exc:
            self._storage_error = self._storage_failed(exc)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self._size += len(raw_data)
        if self._size > self.max_bytes:
            self._discard()
            limit_mb = self.max_bytes // (1024 * 1024)
            raise ServiceError(
                f"The file is larger than the upload limit of {limit_mb} MB.",
                error_code="FILE_TOO_LARGE",
                status_code=413,
                details={"limit_mb": limit_mb},
            )
        if self._storage_error is not None:
            return None
        if len(self._head) < HEAD_BYTES:
            self._head += raw_data[: HEAD_BYTES - len(self._head)]
        self._digest.update(raw_data)
        try:
            self._handle.write(raw_data)
        except OSError as exc:
            self._storage_error = self._storage_failed(exc)
        return None

    def file_complete(self, file_size: int) -> StoredUpload | None:
        if self._storage_error is not None:
            raise self._storage_error
        if self._handle is None:
            return None
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
        except OSError as exc:
            raise self._storage_failed(exc) from exc
        self._handle = None
        return StoredUpload(
            name=self.file_name or "",
            path=self.partial_path,
            size=self._size,
            sha256=self._digest.hexdigest(),
            head=self._head,
            content_type=self.content_type or "",
        )

    def upload_interrupted(self) -> None:
        self._discard()

    def _storage_failed(self, error: OSError) -> ServiceError:
        """Delete the partial file, then return StorageFull for a full disk or re-raise any other error."""
        self._discard()
        if not is_storage_full(error):
            raise error
        return StorageFull()

    def _discard(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except OSError:
                # Closing flushes the buffer, which fails again on a full disk.
                # The file is deleted next either way.
                pass
            self._handle = None
        self.partial_path.unlink(missing_ok=True)
