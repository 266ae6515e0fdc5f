"""Responses for artifact downloads: streamed by Django or sent by Nginx.

The view has already authorized the request. With ARTIFACT_DELIVERY=stream
Django streams the file itself. With ARTIFACT_DELIVERY=x-accel it returns
an empty body with `X-Accel-Redirect: <ARTIFACT_ACCEL_PREFIX><storage_relpath>`,
and Nginx serves the file from an `internal` location, with range requests
and without holding a Gunicorn worker for the transfer.
"""

import logging
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpResponse
from django.utils.http import content_disposition_header

from core.errors import ServiceError

from .models import Artifact

logger = logging.getLogger(__name__)

DELIVERY_STREAM = "stream"
DELIVERY_X_ACCEL = "x-accel"
CHECKSUM_HEADER = "X-Checksum-SHA256"


def artifact_gone(artifact: Artifact) -> ServiceError:
    return ServiceError(
        "The artifact's file is no longer stored (removed by retention). "
        "Run the job again to recreate it.",
        error_code="ARTIFACT_GONE",
        status_code=410,
        details={
            "artifact_id": str(artifact.id),
            "deleted_at": artifact.deleted_at.isoformat() if artifact.deleted_at else None,
        },
    )


def artifact_response(artifact: Artifact, filename: str) -> HttpResponse | FileResponse:
    """Build the download response for an authorized artifact.

    Raises ServiceError ARTIFACT_GONE (410) when retention deleted the file
    or the file is missing.
    """
    if artifact.deleted_at is not None:
        raise artifact_gone(artifact)
    path = artifact.get_path()
    if settings.ARTIFACT_DELIVERY == DELIVERY_X_ACCEL:
        if not path.is_file():
            raise artifact_gone(artifact)
        response = HttpResponse(b"", content_type=artifact.content_type)
        response["Content-Disposition"] = content_disposition_header(True, filename)
        response["X-Accel-Redirect"] = settings.ARTIFACT_ACCEL_PREFIX + quote(
            artifact.storage_relpath
        )
    else:
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise artifact_gone(artifact) from exc
        response = FileResponse(
            handle, as_attachment=True, filename=filename, content_type=artifact.content_type
        )
    response[CHECKSUM_HEADER] = artifact.checksum_sha256
    return response
