"""Dashboard and report endpoints under /v1/, for API keys with `dashboard:read`.

Every job queryset goes through accounts.scoping.scope_to_key, so a key
reads its tenant's jobs, or only its own under the `key` isolation policy.
Worker status is shared infrastructure and carries counts only.
"""

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import generics
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.authentication import require_api_key
from accounts.models import Scope
from accounts.scoping import scope_to_key
from documents.models import IngestionJob

from . import stats, usage, workers
from .renderers import ReportCSVRenderer


class DashboardAPIView(generics.GenericAPIView):
    required_scopes = {"GET": Scope.DASHBOARD_READ.value}

    def get_queryset(self) -> QuerySet[IngestionJob]:
        return scope_to_key(IngestionJob.objects.all(), require_api_key(self.request))


class SummaryView(DashboardAPIView):
    """Job counts, running stages, durations, recent failures and throughput."""

    def get(self, request: Request) -> Response:
        return Response(stats.summary(self.get_queryset(), timezone.now()))


class WorkersView(DashboardAPIView):
    """Workers online, their load and memory, and the queue depth."""

    def get(self, request: Request) -> Response:
        return Response(workers.worker_status())


class ActiveJobsView(DashboardAPIView):
    """RUNNING jobs with their stage, elapsed time and progress."""

    def get(self, request: Request) -> Response:
        rows = stats.active_jobs(self.get_queryset(), timezone.now())
        return Response({"count": len(rows), "results": rows})


class UsageReportView(DashboardAPIView):
    """Usage by day, key or option between two UTC days, as JSON or CSV."""

    renderer_classes = [JSONRenderer, ReportCSVRenderer]
    # Key names are typed by people; key ids, last4 and numbers are generated.
    csv_text_columns = ("key_name",)

    def get(self, request: Request) -> Response:
        query = usage.parse_usage_query(request.query_params, timezone.now().date())
        report = usage.usage_report(self.get_queryset(), query)
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
