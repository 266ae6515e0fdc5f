"""Serializers that describe the dashboard's JSON bodies in the OpenAPI schema.

The views build their bodies with plain dicts (dashboard.stats, .workers,
.usage); these classes only document those shapes for drf-spectacular.
"""

from rest_framework import serializers


class JobCountsSerializer(serializers.Serializer):
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    canceled = serializers.IntegerField()
    quarantined = serializers.IntegerField()


class StageCountsSerializer(serializers.Serializer):
    scanning = serializers.IntegerField()
    converting = serializers.IntegerField()
    exporting = serializers.IntegerField()
    chunking = serializers.IntegerField()
    finalizing = serializers.IntegerField()


class DurationsSerializer(serializers.Serializer):
    avg_24h = serializers.FloatField(allow_null=True, help_text="ms; null without jobs")
    p50_24h = serializers.FloatField(allow_null=True, help_text="ms; null without jobs")
    p95_24h = serializers.FloatField(allow_null=True, help_text="ms; null without jobs")
    total_24h = serializers.IntegerField(help_text="ms")
    total_30d = serializers.IntegerField(help_text="ms")


class FailureSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    filename = serializers.CharField()
    tenant = serializers.CharField()
    status = serializers.CharField()
    error_code = serializers.CharField()
    finished_at = serializers.DateTimeField()


class ThroughputSerializer(serializers.Serializer):
    jobs_24h = serializers.IntegerField(help_text="SUCCEEDED jobs finished in the last 24 hours")
    jobs_7d = serializers.IntegerField(help_text="SUCCEEDED jobs finished in the last 7 days")
    pages_24h = serializers.IntegerField(help_text="pages of those jobs in the last 24 hours")


class SummarySerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    jobs = JobCountsSerializer()
    stages_running = StageCountsSerializer()
    durations_ms = DurationsSerializer()
    recent_failures = FailureSerializer(many=True)
    crashed_conversions_24h = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Failed jobs per crash code (RESOURCE_LIMIT, WORKER_CRASHED, LOST_WORKER, TIMEOUT) in 24 hours.",
    )
    throughput = ThroughputSerializer()


class WorkerSerializer(serializers.Serializer):
    hostname = serializers.CharField()
    online = serializers.BooleanField()
    answered_ping = serializers.BooleanField()
    active_tasks = serializers.IntegerField(allow_null=True)
    pool = serializers.CharField(allow_null=True)
    concurrency = serializers.IntegerField(allow_null=True)
    rss_mb = serializers.FloatField(allow_null=True)
    last_heartbeat = serializers.DateTimeField(allow_null=True)
    heartbeat_age_seconds = serializers.FloatField(allow_null=True)


class WorkersSerializer(serializers.Serializer):
    workers_online = serializers.IntegerField()
    workers = WorkerSerializer(many=True)
    queues = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        help_text="messages waiting per queue; null when the broker did not respond",
    )
    inspected_at = serializers.DateTimeField(allow_null=True)
    errors = serializers.ListField(child=serializers.CharField())


class ActiveJobSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    filename = serializers.CharField()
    tenant = serializers.CharField()
    stage = serializers.CharField()
    attempt = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    elapsed_seconds = serializers.FloatField(allow_null=True)
    pages_done = serializers.IntegerField(allow_null=True)
    pages_total = serializers.IntegerField(allow_null=True)
    progress = serializers.FloatField(allow_null=True, help_text="pages_done / pages_total")


class ActiveJobsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    results = ActiveJobSerializer(many=True)


class UsageReportSerializer(serializers.Serializer):
    # "from" is a Python keyword, so the field is declared below.
    to = serializers.DateField()
    group_by = serializers.ChoiceField(choices=["day", "key", "option"])
    columns = serializers.ListField(child=serializers.CharField())
    rows = serializers.ListField(
        child=serializers.DictField(), help_text="one object per group, with every column"
    )
    totals = serializers.DictField(help_text="the metric columns over the whole range")

    def get_fields(self) -> dict:
        fields = super().get_fields()
        return {"from": serializers.DateField(), **fields}
