"""Dashboard and report endpoints under /v1/, for API keys with `dashboard:read`.

Every job queryset goes through accounts.scoping.scope_to_key, so a key
reads its tenant's jobs, or only its own under the `key` isolation policy.
Worker status is shared infrastructure and carries counts only.
"""

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import require_api_key
from accounts.models import Scope
from accounts.scoping import scope_to_key
from documents.models import IngestionJob

from . import stats, usage, workers
from .renderers import ReportCSVRenderer
from .schema import (
    ActiveJobsSerializer,
    SummarySerializer,
    UsageReportSerializer,
    WorkersSerializer,
)


class DashboardAPIView(APIView):
    required_scopes = {"GET": Scope.DASHBOARD_READ.value}

    def get_jobs(self) -> QuerySet[IngestionJob]:
        return scope_to_key(IngestionJob.objects.all(), require_api_key(self.request))


class SummaryView(DashboardAPIView):
    """Job counts, running stages, durations, recent failures and throughput."""

    @extend_schema(responses=SummarySerializer)
    def get(self, request: Request) -> Response:
        return Response(stats.summary(self.get_jobs(), timezone.now()))


class WorkersView(DashboardAPIView):
    """Workers online, their load and memory, and the queue depth."""

    @extend_schema(responses=WorkersSerializer)
    def get(self, request: Request) -> Response:
        return Response(workers.worker_status())


class ActiveJobsView(DashboardAPIView):
    """RUNNING jobs with their stage, elapsed time and progress."""

    @extend_schema(responses=ActiveJobsSerializer)
    def get(self, request: Request) -> Response:
        rows = stats.active_jobs(self.get_jobs(), timezone.now())
        return Response({"count": len(rows), "results": rows})


class UsageReportView(DashboardAPIView):
    """Usage by day, key or option between two UTC days, as JSON or CSV."""

    renderer_classes = [JSONRenderer, ReportCSVRenderer]
    # Key names are typed by people; key ids, last4 and numbers are generated.
    csv_text_columns = ("key_name",)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "from", OpenApiTypes.DATE, description="first UTC day (default: 29 days before 'to')"
            ),
            OpenApiParameter("to", OpenApiTypes.DATE, description="last UTC day (default: today)"),
            OpenApiParameter("group_by", str, enum=list(usage.GROUP_BY_CHOICES), default="day"),
        ],
        responses={
            (200, "application/json"): UsageReportSerializer,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request) -> Response:
        query = usage.parse_usage_query(request.query_params, timezone.now().date())
        report = usage.usage_report(self.get_jobs(), query)
        response = Response(report)
        if request.accepted_renderer.format == ReportCSVRenderer.format:
            filename = f"usage-{query.group_by}-{report['from']}-{report['to']}.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    def handle_exception(self, exc: Exception) -> Response:
        # Errors keep the JSON error shape even when CSV was requested.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response
