from django.urls import reverse
from rest_framework import serializers

from .models import Artifact, Document, IngestionJob, JobEvent


class ArtifactSerializer(serializers.ModelSerializer):
    job_id = serializers.UUIDField(read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = (
            "id",
            "job_id",
            "kind",
            "content_type",
            "size_bytes",
            "checksum_sha256",
            "created_at",
            "download_url",
        )

    def get_download_url(self, artifact: Artifact) -> str:
        return reverse("artifact-download", kwargs={"pk": artifact.pk})


class JobEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobEvent
        fields = ("timestamp", "level", "message", "payload_json")


class JobSerializer(serializers.ModelSerializer):
    document_id = serializers.UUIDField(read_only=True)
    reused_from = serializers.UUIDField(source="reused_from_id", read_only=True, allow_null=True)
    progress = serializers.SerializerMethodField()
    artifacts = ArtifactSerializer(many=True, read_only=True)

    class Meta:
        model = IngestionJob
        fields = (
            "id",
            "document_id",
            "status",
            "stage",
            "options_json",
            "docling_version",
            "queued_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "scan_ms",
            "convert_ms",
            "export_ms",
            "chunk_ms",
            "attempt",
            "max_retries",
            "error_code",
            "error_message",
            "error_details_json",
            "worker_hostname",
            "celery_task_id",
            "requeue_count",
            "reused_from",
            "progress",
            "created_at",
            "updated_at",
            "artifacts",
        )

    def get_progress(self, job: IngestionJob) -> dict[str, int | None]:
        return {"pages_done": job.pages_done, "pages_total": job.pages_total}


class JobDetailSerializer(JobSerializer):
    events = JobEventSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = (*JobSerializer.Meta.fields, "events")


class JobSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = IngestionJob
        fields = ("id", "status", "stage", "created_at", "finished_at", "error_code")


class DocumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Document
        fields = (
            "id",
            "original_filename",
            "sha256",
            "mime_type",
            "size_bytes",
            "status",
            "page_count",
            "created_at",
            "updated_at",
        )


class DocumentWithJobSerializer(serializers.Serializer):
    """The response to an upload or an ingest: the document and its new job."""

    document = DocumentSerializer()
    job = JobSerializer(allow_null=True)


class UploadRequestSerializer(serializers.Serializer):
    """The multipart form of POST /v1/documents (documentation only)."""

    file = serializers.FileField(help_text="The PDF; its bytes, not its name, decide the type.")
    options = serializers.JSONField(
        required=False, help_text="Conversion options as a JSON object; see the API description."
    )
    ingest = serializers.BooleanField(
        required=False, default=True, help_text="false stores the document without a job."
    )


class IngestRequestSerializer(serializers.Serializer):
    options = serializers.JSONField(required=False, help_text="Conversion options as a JSON object.")
