"""GET /v1/dashboard/summary on a known set of jobs."""

import random

import pytest
from django.db.models import QuerySet
from django.utils import timezone

from accounts.keys import create_api_key
from accounts.models import Tenant
from conftest import client_for
from dashboard.aggregates import PercentileCont, percentile_by_offset, supports_percentile_cont
from documents.models import IngestionJob

from .factories import Stage, Status, ago, make_job

pytestmark = pytest.mark.django_db


def make_known_jobs(tenant: Tenant, key=None) -> None:
    """Jobs whose summary is worked out by hand in test_summary_exact_numbers."""
    # Finished in the last 24 hours: durations 1000, 2000, 3000, 4000, 10000 ms.
    make_job(tenant, key=key, finished_at=ago(hours=1), duration_ms=1000, pages=2)
    make_job(tenant, key=key, finished_at=ago(hours=2), duration_ms=2000, pages=3)
    make_job(tenant, key=key, finished_at=ago(hours=3), duration_ms=3000, pages=5)
    make_job(
        tenant, key=key, status=Status.FAILED, stage=Stage.CONVERTING,
        finished_at=ago(minutes=30), duration_ms=4000, error_code="PDF_ENCRYPTED",
    )
    make_job(
        tenant, key=key, status=Status.FAILED, stage=Stage.CONVERTING,
        finished_at=ago(minutes=10), duration_ms=10000, error_code="TIMEOUT",
    )
    # Older: one inside 7 and 30 days, one outside both.
    make_job(tenant, key=key, finished_at=ago(days=3), duration_ms=5000, pages=7)
    make_job(tenant, key=key, finished_at=ago(days=40), duration_ms=7000, pages=11)
    # Terminal without a duration: left out of the duration figures.
    make_job(
        tenant, key=key, status=Status.QUARANTINED, stage=Stage.SCANNING,
        finished_at=ago(hours=5), error_code="VIRUS_FOUND",
    )
    make_job(tenant, key=key, status=Status.CANCELED, stage=Stage.EXPORTING, finished_at=ago(hours=6))
    # Not finished.
    make_job(tenant, key=key, status=Status.QUEUED, stage=Stage.SCANNING)
    make_job(tenant, key=key, status=Status.RUNNING, stage=Stage.SCANNING, started_at=ago(minutes=1))
    make_job(tenant, key=key, status=Status.RUNNING, stage=Stage.CONVERTING, started_at=ago(minutes=2))
    make_job(tenant, key=key, status=Status.RUNNING, stage=Stage.CONVERTING, started_at=ago(minutes=3))
    make_job(tenant, key=key, status=Status.RUNNING, stage=Stage.CHUNKING, started_at=ago(minutes=4))


def make_noise(tenant: Tenant) -> None:
    """Jobs of another tenant that would change every number if they leaked."""
    for hours in (1, 2):
        make_job(tenant, finished_at=ago(hours=hours), duration_ms=999_000, pages=100)
    make_job(
        tenant, status=Status.FAILED, finished_at=ago(minutes=1), duration_ms=50,
        error_code="OTHER_TENANT_ERROR",
    )
    make_job(tenant, status=Status.RUNNING, stage=Stage.EXPORTING, started_at=ago(minutes=1))


def test_summary_exact_numbers() -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])
    make_known_jobs(issued.api_key.tenant)
    make_noise(Tenant.objects.create(name="globex"))

    response = client_for(issued.token).get("/v1/dashboard/summary")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["jobs"] == {
        "queued": 1, "running": 4, "succeeded": 5, "failed": 2, "canceled": 1, "quarantined": 1,
    }
    assert body["stages_running"] == {
        "scanning": 1, "converting": 2, "exporting": 0, "chunking": 1, "finalizing": 0,
    }
    assert body["durations_ms"]["avg_24h"] == 4000.0
    assert body["durations_ms"]["p50_24h"] == 3000.0
    # rank (5 - 1) * 0.95 = 3.8: 4000 + 0.8 * (10000 - 4000)
    assert body["durations_ms"]["p95_24h"] == 8800.0
    assert body["durations_ms"]["total_24h"] == 20000
    assert body["durations_ms"]["total_30d"] == 25000
    assert body["throughput"] == {"jobs_24h": 3, "jobs_7d": 4, "pages_24h": 10}
    codes = [failure["error_code"] for failure in body["recent_failures"]]
    assert codes == ["TIMEOUT", "PDF_ENCRYPTED", "VIRUS_FOUND"]
    assert set(body["recent_failures"][0]) >= {"job_id", "document_id", "error_code", "finished_at"}


def test_summary_empty_tenant() -> None:
    issued = create_api_key("empty", scopes=["dashboard:read"])
    make_noise(Tenant.objects.create(name="globex"))

    body = client_for(issued.token).get("/v1/dashboard/summary").json()

    assert set(body["jobs"].values()) == {0}
    assert set(body["stages_running"].values()) == {0}
    assert body["durations_ms"] == {
        "avg_24h": None, "p50_24h": None, "p95_24h": None, "total_24h": 0, "total_30d": 0,
    }
    assert body["recent_failures"] == []
    assert body["throughput"] == {"jobs_24h": 0, "jobs_7d": 0, "pages_24h": 0}


def test_summary_key_isolation_policy() -> None:
    own = create_api_key("acme", scopes=["dashboard:read"])
    sibling = create_api_key("acme", scopes=["dashboard:read"])
    Tenant.objects.filter(name="acme").update(isolation_policy=Tenant.IsolationPolicy.KEY)
    make_known_jobs(own.api_key.tenant, key=own.api_key)
    make_noise(own.api_key.tenant)  # created by no key: hidden from both under `key`

    own_body = client_for(own.token).get("/v1/dashboard/summary").json()
    sibling_body = client_for(sibling.token).get("/v1/dashboard/summary").json()

    assert own_body["jobs"]["succeeded"] == 5
    assert own_body["durations_ms"]["total_24h"] == 20000
    assert set(sibling_body["jobs"].values()) == {0}
    assert sibling_body["recent_failures"] == []


def test_summary_requires_scope() -> None:
    issued = create_api_key("acme", scopes=["jobs:read"])

    anonymous = client_for("").get("/v1/dashboard/summary")
    unscoped = client_for(issued.token).get("/v1/dashboard/summary")

    assert anonymous.status_code == 401
    assert unscoped.status_code == 403
    assert unscoped.json()["error_code"] == "SCOPE_REQUIRED"
    assert unscoped.json()["details"] == {"scope": "dashboard:read"}


def reference_percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * fraction
    lower = int(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


@pytest.mark.skipif(
    not supports_percentile_cont(), reason="percentile_cont needs PostgreSQL"
)
@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0])
def test_percentile_fallback_matches_postgres(fraction: float) -> None:
    tenant = Tenant.objects.create(name="acme")
    generator = random.Random(7)
    durations = [generator.randint(10, 100_000) for _ in range(37)]
    for duration in durations:
        make_job(tenant, finished_at=timezone.now(), duration_ms=duration)
    make_job(tenant, status=Status.RUNNING)  # NULL duration: ignored by both
    jobs: QuerySet[IngestionJob] = IngestionJob.objects.filter(tenant=tenant)

    in_postgres = jobs.aggregate(value=PercentileCont("duration_ms", fraction))["value"]
    by_offset = percentile_by_offset(jobs, "duration_ms", fraction)

    expected = reference_percentile(durations, fraction)
    assert in_postgres == pytest.approx(expected)
    assert by_offset == pytest.approx(expected)


def test_percentile_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError):
        PercentileCont("duration_ms", 1.5)
    with pytest.raises(ValueError):
        percentile_by_offset(IngestionJob.objects.all(), "duration_ms", -0.1)


def test_percentile_fallback_empty() -> None:
    assert percentile_by_offset(IngestionJob.objects.all(), "duration_ms", 0.5) is None


def test_summary_counts_crashed_conversions_per_code(db) -> None:
    from django.utils import timezone

    from accounts.keys import create_api_key
    from conftest import client_for
    from documents.models import Document, IngestionJob

    issued = create_api_key("crashes", scopes=["dashboard:read"])
    tenant = issued.api_key.tenant
    document = Document.objects.create(tenant=tenant, sha256="0" * 64, size_bytes=1)
    now = timezone.now()
    for code in ("RESOURCE_LIMIT", "RESOURCE_LIMIT", "WORKER_CRASHED", "PDF_CORRUPT"):
        IngestionJob.objects.create(
            tenant=tenant, document=document, status=IngestionJob.Status.FAILED,
            error_code=code, finished_at=now,
        )
    body = client_for(issued.token).get("/v1/dashboard/summary").json()
    assert body["crashed_conversions_24h"] == {
        "RESOURCE_LIMIT": 2, "WORKER_CRASHED": 1, "LOST_WORKER": 0, "TIMEOUT": 0,
    }
