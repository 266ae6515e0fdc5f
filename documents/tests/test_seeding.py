"""seed_jobs writes consistent synthetic documents and jobs with COPY."""

import pytest
from django.core.management import call_command
from django.db.models import F

from accounts.models import Tenant
from documents.models import Document, IngestionJob

pytestmark = pytest.mark.django_db


def test_seed_jobs_writes_rows_per_tenant() -> None:
    call_command("seed_jobs", count=300, tenants=3, batch_size=100, no_vacuum=True, yes=True)
    assert IngestionJob.objects.count() == 300
    assert Document.objects.count() == 300
    assert Tenant.objects.filter(name__startswith="seed-").count() == 3
    for tenant in Tenant.objects.filter(name__startswith="seed-"):
        assert IngestionJob.objects.filter(tenant=tenant).count() == 100


def test_seeded_jobs_are_consistent() -> None:
    call_command("seed_jobs", count=500, tenants=2, no_vacuum=True, yes=True)
    terminal = IngestionJob.objects.filter(status__in=IngestionJob.TERMINAL_STATUSES)
    assert not terminal.filter(finished_at__isnull=True).exists()
    assert not terminal.filter(duration_ms__isnull=True).exists()
    assert not IngestionJob.objects.exclude(document__tenant_id=F("tenant_id")).exists()
    succeeded = IngestionJob.objects.filter(status=IngestionJob.Status.SUCCEEDED)
    assert succeeded.exists()
    assert not succeeded.exclude(stage=IngestionJob.Stage.FINALIZING).exists()
    assert not succeeded.filter(pages_total__isnull=True).exists()
    for job in succeeded[:50]:
        assert job.finished_at > job.started_at >= job.created_at


def test_seed_again_adds_rows() -> None:
    call_command("seed_jobs", count=10, tenants=2, no_vacuum=True, yes=True)
    call_command("seed_jobs", count=10, tenants=2, no_vacuum=True, yes=True)
    assert IngestionJob.objects.count() == 20
    assert Tenant.objects.filter(name__startswith="seed-").count() == 2
