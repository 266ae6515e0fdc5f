"""REST endpoints for documents, jobs and artifacts.

Handlers validate, call a service and respond. Every queryset goes through
accounts.scoping, so another tenant's objects answer 404.
"""

import json
import logging
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse, HttpResponse
from django.shortcuts import get_object_or_404
import django_filters
from rest_framework import generics, status
from rest_framework.filters import OrderingFilter
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import require_api_key
from accounts.models import ApiKey
from accounts.scoping import scope_to_key
from accounts.throttling import UploadBurstThrottle, UploadSustainedThrottle
from core.errors import ServiceError

from . import services
from .delivery import artifact_response
from .models import Artifact, Document, IngestionJob
from .options import resolve_options
from .serializers import (
    ArtifactSerializer,
    DocumentSerializer,
    JobDetailSerializer,
    JobSerializer,
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


class DocumentListCreateView(generics.ListAPIView):
    serializer_class = DocumentSerializer
    required_scopes = {"GET": "documents:read", "POST": "documents:write"}
    filterset_fields = ("status", "sha256")

    def get_throttles(self) -> list:
        throttles = super().get_throttles()
        if self.request.method == "POST":
            throttles += [UploadBurstThrottle(), UploadSustainedThrottle()]
        return throttles

    def get_queryset(self) -> QuerySet[Document]:
        return scope_to_key(Document.objects.all(), require_api_key(self.request))

    parser_classes = [MultiPartParser]

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


class DocumentDetailView(generics.RetrieveAPIView):
    serializer_class = DocumentSerializer
    required_scopes = {"GET": "documents:read"}

    def get_queryset(self) -> QuerySet[Document]:
        return scope_to_key(Document.objects.all(), require_api_key(self.request))


class DocumentIngestView(generics.GenericAPIView):
    required_scopes = {"POST": "documents:write"}
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self) -> QuerySet[Document]:
        return scope_to_key(Document.objects.all(), require_api_key(self.request))

    def post(self, request: Request, pk: str) -> Response:
        api_key = require_api_key(request)
        document = self.get_object()
        options = parse_options_field(request.data.get("options"))
        with transaction.atomic():
            job = services.create_job(document, api_key, options)
        return Response(document_with_job(document, job), status=status.HTTP_201_CREATED)


class JobFilter(django_filters.FilterSet):
    document_id = django_filters.UUIDFilter(field_name="document_id")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = IngestionJob
        fields = ("status", "stage", "document_id", "created_after", "created_before")


class JobCursorPagination(CursorPagination):
    """Keyset pagination: no COUNT(*) and no OFFSET, so pages stay fast on big tables."""

    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"
    ordering = "-created_at"


class JobListView(generics.ListAPIView):
    serializer_class = JobSerializer
    required_scopes = {"GET": "jobs:read"}
    filterset_class = JobFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, OrderingFilter]
    ordering_fields = ("created_at", "finished_at")
    pagination_class = JobCursorPagination

    def get_queryset(self) -> QuerySet[IngestionJob]:
        queryset = IngestionJob.objects.prefetch_related("artifacts")
        return scope_to_key(queryset, require_api_key(self.request))


class JobActionView(generics.GenericAPIView):
    """Base of the job actions: find the job in the caller's scope, act, return it."""

    required_scopes = {"POST": "jobs:write"}
    serializer_class = JobSerializer

    def get_queryset(self) -> QuerySet[IngestionJob]:
        return scope_to_key(IngestionJob.objects.all(), require_api_key(self.request))

    def act(self, job: IngestionJob, api_key: ApiKey) -> IngestionJob:
        raise NotImplementedError

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


class JobDetailView(generics.RetrieveAPIView):
    serializer_class = JobDetailSerializer
    required_scopes = {"GET": "jobs:read"}

    def get_queryset(self) -> QuerySet[IngestionJob]:
        queryset = IngestionJob.objects.prefetch_related("artifacts", "events")
        return scope_to_key(queryset, require_api_key(self.request))


class ArtifactListView(generics.ListAPIView):
    serializer_class = ArtifactSerializer
    required_scopes = {"GET": "artifacts:read"}
    filterset_fields = ("job_id", "kind")

    def get_queryset(self) -> QuerySet[Artifact]:
        return scope_to_key(Artifact.objects.all(), require_api_key(self.request))


class ArtifactDownloadView(generics.GenericAPIView):
    required_scopes = {"GET": "artifacts:read"}

    def get_queryset(self) -> QuerySet[Artifact]:
        queryset = Artifact.objects.select_related("job__document")
        return scope_to_key(queryset, require_api_key(self.request))

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
