"""REST endpoints for documents, jobs and artifacts.

Handlers validate, call a service and respond. Every queryset goes through
accounts.scoping, so another tenant's objects answer 404.
"""

import json
import logging
from datetime import datetime
from datetime import timezone as dt_timezone
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import require_api_key
from accounts.models import ApiKey
from accounts.scoping import ScopedQuerysetMixin
from accounts.throttling import UploadBurstThrottle, UploadSustainedThrottle
from core.errors import ServiceError

from . import services
from .delivery import artifact_response
from .models import Artifact, Document, IngestionJob
from .options import resolve_options
from .serializers import (
    ArtifactSerializer,
    DocumentSerializer,
    DocumentWithJobSerializer,
    IngestRequestSerializer,
    JobDetailSerializer,
    JobSerializer,
    UploadRequestSerializer,
)
from .uploads import UPLOAD_FIELD, QuarantineUploadHandler

logger = logging.getLogger(__name__)

# Multipart framing and form fields around the file itself.
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
TRUE_VALUES = {"true", "1", "yes"}
FALSE_VALUES = {"false", "0", "no"}


def parse_options_field(raw: Any) -> dict[str, Any]:
    if raw in (None, ""):
        return resolve_options({})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ServiceError(
                f"The 'options' field is not valid JSON: {exc.msg} at position {exc.pos}.",
                error_code="INVALID_OPTIONS",
            ) from exc
    return resolve_options(raw)


def parse_bool_field(name: str, raw: Any, default: bool) -> bool:
    if raw in (None, ""):
        return default
    value = str(raw).strip().lower()
    if value in TRUE_VALUES:
        return True
    if value in FALSE_VALUES:
        return False
    raise ServiceError(
        f"The '{name}' field must be true or false, got '{str(raw)[:20]}'.",
        error_code="VALIDATION_ERROR",
    )


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > services.MAX_IDEMPOTENCY_KEY_LENGTH or not key.isprintable():
        raise ServiceError(
            "The Idempotency-Key header must be 1 to "
            f"{services.MAX_IDEMPOTENCY_KEY_LENGTH} printable characters.",
            error_code="INVALID_IDEMPOTENCY_KEY",
        )
    return key


def document_with_job(document: Document, job: IngestionJob | None) -> dict[str, Any]:
    return {
        "document": DocumentSerializer(document).data,
        "job": JobSerializer(job).data if job is not None else None,
    }


class DocumentListCreateView(ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = DocumentSerializer
    required_scopes = {"GET": "documents:read", "POST": "documents:write"}
    filterset_fields = ("status", "sha256")

    def get_throttles(self) -> list:
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles += [UploadBurstThrottle(), UploadSustainedThrottle()]
        return throttles

    def base_queryset(self) -> QuerySet[Document]:
        return Document.objects.all()

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": UploadRequestSerializer},
        responses={
            201: DocumentWithJobSerializer,
            413: OpenApiResponse(description="FILE_TOO_LARGE"),
            415: OpenApiResponse(description="UNSUPPORTED_MEDIA_TYPE: not a PDF"),
            422: OpenApiResponse(description="IDEMPOTENCY_KEY_REUSED"),
            507: OpenApiResponse(description="STORAGE_FULL: no space left in DATA_ROOT"),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Repeat a request with the same key and body to get the same document and job.",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        api_key = require_api_key(request)
        max_bytes = settings.UPLOAD_MAX_SIZE_BYTES
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > max_bytes + MULTIPART_OVERHEAD_BYTES:
            raise ServiceError(
                f"The file is larger than the upload limit of {settings.UPLOAD_MAX_SIZE_MB} MB.",
                error_code="FILE_TOO_LARGE",
                status_code=413,
                details={"limit_mb": settings.UPLOAD_MAX_SIZE_MB},
            )

        document_id = services.new_document_id()
        partial = services.partial_upload_path(api_key.tenant, document_id)
        request._request.upload_handlers = [QuarantineUploadHandler(partial, max_bytes)]
        try:
            upload = request.FILES.get(UPLOAD_FIELD)
            if upload is None:
                raise ServiceError(
                    f"No file in the request: send the PDF as the multipart field '{UPLOAD_FIELD}'.",
                    error_code="FILE_MISSING",
                )
            options = parse_options_field(request.data.get("options"))
            ingest = parse_bool_field("ingest", request.data.get("ingest"), default=True)
            accepted = services.accept_upload(
                api_key,
                document_id,
                upload,
                options,
                ingest=ingest,
                idempotency_key=idempotency_key(request),
            )
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        response = Response(
            document_with_job(accepted.document, accepted.job), status=status.HTTP_201_CREATED
        )
        if accepted.replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class DocumentDetailView(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = DocumentSerializer
    required_scopes = {"GET": "documents:read"}

    def base_queryset(self) -> QuerySet[Document]:
        return Document.objects.all()


class DocumentIngestView(ScopedQuerysetMixin, generics.GenericAPIView):
    required_scopes = {"POST": "documents:write"}
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def base_queryset(self) -> QuerySet[Document]:
        return Document.objects.all()

    @extend_schema(
        request=IngestRequestSerializer,
        responses={201: DocumentWithJobSerializer, 409: OpenApiResponse(description="DOCUMENT_DELETED")},
    )
    def post(self, request: Request, pk: str) -> Response:
        api_key = require_api_key(request)
        document = self.get_object()
        options = parse_options_field(request.data.get("options"))
        with transaction.atomic():
            job = services.create_job(document, api_key, options)
        return Response(document_with_job(document, job), status=status.HTTP_201_CREATED)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC.

    Python accepts offsets up to 24 hours but PostgreSQL only up to 16, so
    the value is sent to the database in UTC; one that leaves the calendar's
    range in UTC is rejected here instead of failing in the query.
    """

    def clean(self, value: Any) -> datetime | None:
        result = super().clean(value)
        if result is None:
            return None
        try:
            return result.astimezone(dt_timezone.utc)
        except OverflowError as exc:
            raise forms.ValidationError("The date is out of range.") from exc


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class JobFilter(django_filters.FilterSet):
    document_id = django_filters.UUIDFilter(field_name="document_id")
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = IngestionJob
        fields = ("status", "stage", "document_id", "created_after", "created_before")


class ArtifactFilter(django_filters.FilterSet):
    # A plain UUID filter: an unknown job id gives an empty list, not a 400.
    job_id = django_filters.UUIDFilter(field_name="job_id")

    class Meta:
        model = Artifact
        fields = ("job_id", "kind")


class JobCursorPagination(CursorPagination):
    """Keyset pagination: no COUNT(*) and no OFFSET, so pages stay fast on big tables."""

    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = "-created_at"

    def decode_cursor(self, request: Request) -> Any:
        # DRF returns 404 for a damaged cursor, but it is a bad parameter, so 400.
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise ServiceError(
                "The cursor parameter is invalid: use the 'next' or 'previous' link as given.",
                error_code="INVALID_CURSOR",
            ) from exc


class JobListView(ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = JobSerializer
    required_scopes = {"GET": "jobs:read"}
    filterset_class = JobFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, OrderingFilter]
    ordering_fields = ("created_at", "finished_at")
    pagination_class = JobCursorPagination

    def base_queryset(self) -> QuerySet[IngestionJob]:
        return IngestionJob.objects.prefetch_related("artifacts")


class JobActionView(ScopedQuerysetMixin, generics.GenericAPIView):
    """Base of the job actions: find the job in the caller's scope, act, return it."""

    required_scopes = {"POST": "jobs:write"}
    serializer_class = JobSerializer

    def base_queryset(self) -> QuerySet[IngestionJob]:
        return IngestionJob.objects.all()

    def act(self, job: IngestionJob, api_key: ApiKey) -> IngestionJob:
        raise NotImplementedError

    @extend_schema(
        request=None,
        responses={200: JobSerializer, 409: OpenApiResponse(description="The job is in the wrong state.")},
    )
    def post(self, request: Request, pk: str) -> Response:
        api_key = require_api_key(request)
        job = self.act(self.get_object(), api_key)
        job = IngestionJob.objects.prefetch_related("artifacts").get(pk=job.pk)
        return Response(JobSerializer(job).data)


class JobCancelView(JobActionView):
    def act(self, job: IngestionJob, api_key: ApiKey) -> IngestionJob:
        return services.cancel_job(job, api_key)


class JobRetryView(JobActionView):
    def act(self, job: IngestionJob, api_key: ApiKey) -> IngestionJob:
        return services.retry_job(job, api_key)


def parse_wait_seconds(raw: str | None) -> int:
    if raw in (None, ""):
        return 0
    try:
        seconds = int(raw)
    except ValueError:
        seconds = -1
    if not 0 <= seconds <= services.MAX_JOB_WAIT_SECONDS:
        raise ServiceError(
            f"The 'wait' parameter must be a whole number of seconds from 0 to "
            f"{services.MAX_JOB_WAIT_SECONDS}, got '{raw[:20]}'.",
            error_code="VALIDATION_ERROR",
        )
    return seconds


class JobDetailView(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = JobDetailSerializer
    required_scopes = {"GET": "jobs:read"}

    def base_queryset(self) -> QuerySet[IngestionJob]:
        return IngestionJob.objects.prefetch_related("artifacts", "events")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait",
                int,
                description=(
                    "Hold the request up to this many seconds (0 to 60) until the job is "
                    "SUCCEEDED, FAILED, CANCELED or QUARANTINED, then return it as it is."
                ),
            )
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        wait = parse_wait_seconds(request.query_params.get("wait"))
        if wait:
            # get_object() first, so another tenant's id returns 404 at once.
            services.wait_for_job_end(self.get_object().pk, wait)
        return super().get(request, *args, **kwargs)


class ArtifactListView(ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = ArtifactSerializer
    required_scopes = {"GET": "artifacts:read"}
    filterset_class = ArtifactFilter

    def base_queryset(self) -> QuerySet[Artifact]:
        return Artifact.objects.all()


class ArtifactDownloadView(ScopedQuerysetMixin, generics.GenericAPIView):
    required_scopes = {"GET": "artifacts:read"}

    def base_queryset(self) -> QuerySet[Artifact]:
        return Artifact.objects.select_related("job__document")

    @extend_schema(
        responses={
            (200, "application/octet-stream"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The artifact file, with its content type."
            ),
            410: OpenApiResponse(description="ARTIFACT_GONE"),
        }
    )
    def get(self, request: Request, pk: str) -> HttpResponse | FileResponse:
        artifact = get_object_or_404(self.get_queryset(), pk=pk)
        return artifact_response(artifact, download_filename(artifact))


def download_filename(artifact: Artifact) -> str:
    """Name a download after the original file, with the artifact's suffix."""
    stored_name = PurePosixPath(artifact.storage_relpath).name
    stem = PurePosixPath(artifact.job.document.original_filename or "document").stem
    suffix = stored_name.split(".", 1)[1] if "." in stored_name else ""
    if artifact.kind == Artifact.Kind.CHUNKS_JSON:
        suffix = "chunks.json"
    return f"{stem or 'document'}.{suffix}"
