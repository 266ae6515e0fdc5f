import logging

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core.errors import ServiceError
from dashboard.stats import CRASH_ERROR_CODES

from .delivery import artifact_response
from .models import Artifact, Document, IngestionJob, JobEvent
from .services import retry_job
from .views import download_filename

logger = logging.getLogger(__name__)

# An admin action retries at most this many jobs, so that a select-all over
# a large filter cannot requeue thousands of jobs by mistake.
RETRY_ACTION_MAX_JOBS = 100


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ("original_filename", "tenant", "status", "size_bytes", "page_count", "created_at")
    list_filter = ("status", "tenant")
    search_fields = ("original_filename", "sha256")
    list_select_related = ("tenant",)
    raw_id_fields = ("created_by_key",)
    readonly_fields = ("sha256", "size_bytes", "storage_relpath_quarantine", "storage_relpath_clean")


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    readonly_fields = ("timestamp", "level", "message", "payload_json")


class CrashedConversionFilter(admin.SimpleListFilter):
    """Jobs whose conversion process or worker died, to spot a bad batch."""

    title = "crashed conversion"
    parameter_name = "crashed"

    def lookups(self, request, model_admin):  # type: ignore[no-untyped-def]
        return [("yes", "Crashed (any code)")] + [(code, code) for code in CRASH_ERROR_CODES]

    def queryset(self, request, queryset):  # type: ignore[no-untyped-def]
        if self.value() == "yes":
            return queryset.filter(status=IngestionJob.Status.FAILED, error_code__in=CRASH_ERROR_CODES)
        if self.value() in CRASH_ERROR_CODES:
            return queryset.filter(status=IngestionJob.Status.FAILED, error_code=self.value())
        return queryset


@admin.register(IngestionJob)
class IngestionJobAdmin(admin.ModelAdmin):
    list_display = (
        "id", "tenant", "document", "status", "stage", "error_code", "conversion_crashes",
        "duration_ms", "started_at", "finished_at",
    )
    list_filter = ("status", "stage", CrashedConversionFilter, "error_code", "tenant")
    list_select_related = ("tenant", "document")
    raw_id_fields = ("document", "created_by_key", "reused_from")
    readonly_fields = (
        "queued_at", "started_at", "finished_at", "duration_ms", "scan_ms", "convert_ms",
        "export_ms", "chunk_ms", "error_code", "error_message", "error_details_json",
        "worker_hostname", "celery_task_id", "docling_version",
        "attempt", "stage_started_at", "heartbeat_at", "requeue_count", "pages_done", "pages_total",
    )
    inlines = (JobEventInline,)
    actions = ("retry_selected",)

    @admin.action(description="Retry selected failed or canceled jobs", permissions=["change"])
    def retry_selected(
        self, request: HttpRequest, queryset: QuerySet[IngestionJob]
    ) -> HttpResponse | None:
        """Retry each job through documents.services.retry_job, after a confirmation page.

        The service applies the same checks as the API: status, retry limit
        and deleted document. A job it rejects is reported with its error
        code, and the others are still retried.
        """
        count = queryset.count()
        if count > RETRY_ACTION_MAX_JOBS:
            self.message_user(
                request,
                f"{count} jobs are selected; retry at most {RETRY_ACTION_MAX_JOBS} at a time.",
                messages.ERROR,
            )
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Retry jobs?",
                "opts": self.model._meta,
                "jobs": queryset.select_related("tenant", "document"),
                "action": "retry_selected",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/documents/retry_confirmation.html", context)

        retried = 0
        for job in queryset:
            try:
                retry_job(job, None)
            except ServiceError as exc:
                logger.info("Admin retry of job %s rejected: %s", job.pk, exc.error_code)
                self.message_user(
                    request, f"Job {job.pk} was not retried: {exc.error_code}: {exc.message}",
                    messages.WARNING,
                )
                continue
            retried += 1
            self.log_change(request, job, "Retried from the admin")
        logger.info("Admin user %s retried %s job(s)", request.user.pk, retried)
        if retried:
            self.message_user(request, f"{retried} job(s) queued again.", messages.SUCCESS)
        return None


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ("kind", "job", "size_bytes", "created_at", "download_link")
    list_filter = ("kind",)
    list_select_related = ("job",)
    raw_id_fields = ("job", "created_by_key")
    readonly_fields = ("download_link",)

    def get_urls(self) -> list:
        download = path(
            "<uuid:pk>/download/",
            self.admin_site.admin_view(self.download_view),
            name="documents_artifact_download",
        )
        return [download, *super().get_urls()]

    @admin.display(description="file")
    def download_link(self, artifact: Artifact) -> str:
        if artifact._state.adding:
            return "–"
        url = reverse("admin:documents_artifact_download", args=[artifact.pk])
        return format_html('<a href="{}">download</a>', url)

    def download_view(self, request: HttpRequest, pk: str) -> HttpResponse:
        """Send an artifact's file to a staff user who may view artifacts, whatever its tenant."""
        artifact = Artifact.objects.select_related("job__document").filter(pk=pk).first()
        changelist = reverse("admin:documents_artifact_changelist")
        if artifact is None:
            self.message_user(request, f"No artifact {pk}.", messages.ERROR)
            return redirect(changelist)
        if not self.has_view_permission(request, artifact):
            raise PermissionDenied
        try:
            return artifact_response(artifact, download_filename(artifact))
        except ServiceError as exc:
            logger.warning("Admin download of artifact %s failed: %s", pk, exc.error_code)
            self.message_user(request, f"{exc.error_code}: {exc.message}", messages.ERROR)
            return redirect(changelist)
