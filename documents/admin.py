from django.contrib import admin

from .models import Artifact, Document, IngestionJob, JobEvent


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


@admin.register(IngestionJob)
class IngestionJobAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "document", "status", "stage", "duration_ms", "started_at", "finished_at")
    list_filter = ("status", "stage", "tenant")
    list_select_related = ("tenant", "document")
    raw_id_fields = ("document", "created_by_key")
    readonly_fields = (
        "queued_at", "started_at", "finished_at", "duration_ms", "scan_ms", "convert_ms",
        "export_ms", "chunk_ms", "error_code", "error_message", "error_details_json",
        "worker_hostname", "celery_task_id", "docling_version",
    )
    inlines = (JobEventInline,)


@admin.register(Artifact)
class ArtifactAdmin(admin.ModelAdmin):
    list_display = ("kind", "job", "size_bytes", "created_at")
    list_filter = ("kind",)
    list_select_related = ("job",)
    raw_id_fields = ("job", "created_by_key")
