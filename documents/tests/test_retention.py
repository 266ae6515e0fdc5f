"""Retention on files and rows of several ages, orphans both ways, and the dry run."""

import logging
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.keys import create_api_key
from conftest import client_for
from documents.models import Artifact, Document, IngestionJob
from documents.retention import prune_storage
from documents.tests.factories import (
    make_artifact,
    make_document,
    make_job,
    make_tenant,
    set_mtime,
)

pytestmark = pytest.mark.django_db

Status = Document.Status


@pytest.fixture(autouse=True)
def own_data_root(settings, tmp_path: Path) -> Path:
    """Give each test an empty DATA_ROOT, so other tests' files are not orphans here."""
    settings.DATA_ROOT = tmp_path
    settings.QUARANTINE_RETENTION_HOURS = 72
    settings.INFECTED_RETENTION_HOURS = 720
    settings.ARTIFACT_RETENTION_DAYS = 30
    settings.ORPHAN_GRACE_MINUTES = 15
    return tmp_path


@pytest.fixture
def now():
    return timezone.now()


def write_file(root: Path, relpath: str, age: timedelta, now) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)
    set_mtime(path, now - age)
    return path


def rules(report) -> dict[str, int]:
    return report.counts()


# --- quarantine ---------------------------------------------------------------

def test_old_quarantine_upload_deleted(now) -> None:
    tenant = make_tenant()
    old = make_document(tenant, Status.UPLOADED, created_at=now - timedelta(hours=73))
    young = make_document(tenant, Status.UPLOADED, created_at=now - timedelta(hours=71))
    report = prune_storage(now=now)
    old.refresh_from_db()
    young.refresh_from_db()
    assert old.status == Status.DELETED
    assert not old.get_quarantine_path().exists()
    assert young.status == Status.UPLOADED
    assert young.get_quarantine_path().exists()
    assert rules(report) == {"quarantine": 1}


def test_quarantine_upload_with_active_job_kept(now) -> None:
    document = make_document(make_tenant(), Status.UPLOADED, created_at=now - timedelta(days=10))
    make_job(document, status=IngestionJob.Status.QUEUED)
    prune_storage(now=now)
    document.refresh_from_db()
    assert document.status == Status.UPLOADED
    assert document.get_quarantine_path().exists()


def test_infected_upload_has_own_retention(now) -> None:
    tenant = make_tenant()
    kept = make_document(tenant, Status.INFECTED, created_at=now - timedelta(hours=100))
    expired = make_document(tenant, Status.INFECTED, created_at=now - timedelta(hours=721))
    report = prune_storage(now=now)
    kept.refresh_from_db()
    expired.refresh_from_db()
    assert kept.status == Status.INFECTED
    assert kept.get_quarantine_path().exists()
    assert expired.status == Status.DELETED
    assert not expired.get_quarantine_path().exists()
    assert rules(report) == {"infected": 1}


def test_clean_upload_kept_whatever_its_age(now) -> None:
    document = make_document(make_tenant(), Status.CLEAN, created_at=now - timedelta(days=400))
    report = prune_storage(now=now)
    document.refresh_from_db()
    assert document.status == Status.CLEAN
    assert document.get_clean_path().exists()
    assert report.deletions == []


# --- artifacts ----------------------------------------------------------------

def test_artifacts_follow_default_retention(now) -> None:
    job = make_job(make_document(make_tenant()))
    old = make_artifact(job, Artifact.Kind.MARKDOWN, created_at=now - timedelta(days=31))
    young = make_artifact(job, Artifact.Kind.TEXT, created_at=now - timedelta(days=29))
    report = prune_storage(now=now)
    old.refresh_from_db()
    young.refresh_from_db()
    assert old.deleted_at == now
    assert not old.get_path().exists()
    assert young.deleted_at is None
    assert young.get_path().exists()
    assert rules(report) == {"artifact": 1}


def test_tenant_retention_overrides_default(now) -> None:
    short = make_job(make_document(make_tenant("short", artifact_retention_days=7)))
    long = make_job(make_document(make_tenant("long", artifact_retention_days=90)))
    short_artifact = make_artifact(short, created_at=now - timedelta(days=8))
    long_artifact = make_artifact(long, created_at=now - timedelta(days=60))
    prune_storage(now=now)
    short_artifact.refresh_from_db()
    long_artifact.refresh_from_db()
    assert short_artifact.deleted_at is not None
    assert not short_artifact.get_path().exists()
    assert long_artifact.deleted_at is None
    assert long_artifact.get_path().exists()


def test_pruned_artifact_download_gets_410(now) -> None:
    issued = create_api_key("acme")
    job = make_job(make_document(issued.api_key.tenant))
    artifact = make_artifact(job, created_at=now - timedelta(days=31))
    prune_storage(now=now)
    response = client_for(issued.token).get(f"/v1/artifacts/{artifact.id}/download")
    assert response.status_code == 410
    assert response.json()["error_code"] == "ARTIFACT_GONE"


# --- rows without files ---------------------------------------------------------

def test_artifact_row_without_file_marked(now) -> None:
    job = make_job(make_document(make_tenant()))
    artifact = make_artifact(job, with_file=False)
    report = prune_storage(now=now)
    artifact.refresh_from_db()
    assert artifact.deleted_at == now
    assert rules(report) == {"missing_artifact_file": 1}


def test_document_row_without_file_marked_deleted(now) -> None:
    tenant = make_tenant()
    clean = make_document(tenant, Status.CLEAN, with_file=False)
    uploaded = make_document(tenant, Status.UPLOADED, with_file=False)
    report = prune_storage(now=now)
    clean.refresh_from_db()
    uploaded.refresh_from_db()
    assert clean.status == Status.DELETED
    assert uploaded.status == Status.DELETED
    assert rules(report) == {"missing_document_file": 2}


# --- orphans --------------------------------------------------------------------

def test_orphan_files_deleted_after_grace(own_data_root: Path, now) -> None:
    tenant = make_tenant()
    document = make_document(tenant, Status.CLEAN, created_at=now - timedelta(days=1))
    job = make_job(document)
    artifact = make_artifact(job, created_at=now - timedelta(days=1))
    quarantine = f"uploads/quarantine/{tenant.id}"
    artifacts = f"artifacts/{tenant.id}/{job.id}"
    old = timedelta(minutes=16)
    young = timedelta(minutes=14)
    old_orphans = [
        write_file(own_data_root, f"{quarantine}/11111111-1111-1111-1111-111111111111.pdf", old, now),
        write_file(own_data_root, f"{quarantine}/.22222222-2222-2222-2222-222222222222.pdf.part", old, now),
        write_file(own_data_root, f"{artifacts}/.document.md.abc123.tmp", old, now),
        write_file(own_data_root, f"{artifacts}/stray.bin", old, now),
        write_file(own_data_root, "artifacts/not-a-tenant/job/document.md", old, now),
        write_file(own_data_root, "uploads/clean/stray-file-at-tenant-level.pdf", old, now),
    ]
    young_files = [
        write_file(own_data_root, f"{quarantine}/.33333333-3333-3333-3333-333333333333.pdf.part", young, now),
        write_file(own_data_root, f"{artifacts}/.document.md.def456.tmp", young, now),
    ]
    report = prune_storage(now=now)
    for path in old_orphans:
        assert not path.exists(), path
    for path in young_files:
        assert path.exists(), path
    assert document.get_clean_path().exists()
    assert artifact.get_path().exists()
    assert rules(report)["orphan_file"] == len(old_orphans)


def test_file_of_deleted_document_is_orphan(own_data_root: Path, now) -> None:
    document = make_document(make_tenant(), Status.CLEAN)
    Document.objects.filter(pk=document.pk).update(status=Status.DELETED)
    set_mtime(document.get_clean_path(), now - timedelta(hours=1))
    report = prune_storage(now=now)
    assert not document.get_clean_path().exists()
    assert rules(report) == {"orphan_file": 1}


def test_work_folders_of_gone_and_expired_jobs_deleted(own_data_root: Path, now) -> None:
    tenant = make_tenant()
    document = make_document(tenant)
    failed_recently = make_job(document, status=IngestionJob.Status.FAILED)
    IngestionJob.objects.filter(pk=failed_recently.pk).update(finished_at=now - timedelta(days=1))
    failed_long_ago = make_job(document, status=IngestionJob.Status.FAILED)
    IngestionJob.objects.filter(pk=failed_long_ago.pk).update(finished_at=now - timedelta(days=31))
    gone_job_id = "44444444-4444-4444-4444-444444444444"
    old = timedelta(hours=2)
    kept = write_file(own_data_root, f"work/{tenant.id}/{failed_recently.id}/docling.json", old, now)
    expired = write_file(own_data_root, f"work/{tenant.id}/{failed_long_ago.id}/docling.json", old, now)
    gone = write_file(own_data_root, f"work/{tenant.id}/{gone_job_id}/docling.json", old, now)
    for path in (kept, expired, gone):
        set_mtime(path.parent, now - old)
    report = prune_storage(now=now)
    assert kept.exists()
    assert not expired.parent.exists()
    assert not gone.parent.exists()
    assert rules(report) == {"orphan_work": 2}


def test_old_empty_folders_removed(own_data_root: Path, now) -> None:
    empty_old = own_data_root / "artifacts" / "t" / "old-job"
    empty_young = own_data_root / "artifacts" / "t" / "new-job"
    for folder in (empty_old, empty_young):
        folder.mkdir(parents=True)
    set_mtime(empty_old, now - timedelta(hours=1))
    set_mtime(empty_old.parent, now - timedelta(hours=1))
    prune_storage(now=now)
    assert not empty_old.exists()
    assert empty_young.exists()
    assert (own_data_root / "artifacts").exists()


# --- dry run and logs -------------------------------------------------------------

def build_mixed_world(root: Path, now) -> dict:
    tenant = make_tenant()
    quarantined = make_document(tenant, Status.UPLOADED, created_at=now - timedelta(hours=80))
    job = make_job(make_document(tenant))
    expired = make_artifact(job, created_at=now - timedelta(days=40))
    missing = make_artifact(job, Artifact.Kind.TEXT, with_file=False)
    orphan = write_file(root, f"artifacts/{tenant.id}/{job.id}/orphan.md", timedelta(hours=1), now)
    return {"quarantined": quarantined, "expired": expired, "missing": missing, "orphan": orphan}


def test_dry_run_changes_nothing(own_data_root: Path, now) -> None:
    world = build_mixed_world(own_data_root, now)
    files_before = sorted(own_data_root.rglob("*"))
    report = prune_storage(dry_run=True, now=now)
    assert sorted(own_data_root.rglob("*")) == files_before
    world["quarantined"].refresh_from_db()
    assert world["quarantined"].status == Status.UPLOADED
    assert Artifact.objects.filter(deleted_at__isnull=False).count() == 0
    assert rules(report) == {
        "quarantine": 1,
        "artifact": 1,
        "missing_artifact_file": 1,
        "orphan_file": 1,
    }
    real = prune_storage(now=now)
    dry_items = {(item.rule, item.path) for item in report.deletions}
    real_items = {(item.rule, item.path) for item in real.deletions}
    assert real_items == dry_items


def test_each_deletion_logged_with_ids(own_data_root: Path, now, caplog) -> None:
    world = build_mixed_world(own_data_root, now)
    with caplog.at_level(logging.INFO, logger="documents.retention"):
        prune_storage(now=now)
    text = caplog.text
    assert f"document_id={world['quarantined'].id}" in text
    assert f"artifact_id={world['expired'].id}" in text
    assert f"job_id={world['expired'].job_id}" in text
    assert f"artifact_id={world['missing'].id}" in text
    assert "orphan.md" in text


def test_command_dry_run_prints_and_keeps(own_data_root: Path, now) -> None:
    world = build_mixed_world(own_data_root, now)
    out = StringIO()
    call_command("prune_storage", "--dry-run", stdout=out)
    output = out.getvalue()
    assert f"Would delete: quarantine uploads/quarantine/{world['quarantined'].tenant_id}" in output
    assert "Would delete 4 items" in output
    assert world["orphan"].exists()
    world["quarantined"].refresh_from_db()
    assert world["quarantined"].status == Status.UPLOADED


def test_command_deletes(own_data_root: Path, now) -> None:
    world = build_mixed_world(own_data_root, now)
    out = StringIO()
    call_command("prune_storage", stdout=out)
    assert "Deleted 4 items" in out.getvalue()
    assert not world["orphan"].exists()
    assert not world["expired"].get_path().exists()


def test_beat_schedule_runs_registered_task(settings) -> None:
    from docling_service.celery import app
    from documents import tasks  # noqa: F401 - registers the tasks

    entry = settings.CELERY_BEAT_SCHEDULE["prune-storage"]
    assert entry["task"] in app.tasks
    assert entry["schedule"] == settings.RETENTION_INTERVAL_MINUTES * 60


def test_task_returns_counts(own_data_root: Path, now) -> None:
    from documents.tasks import prune_storage_task

    build_mixed_world(own_data_root, now)
    counts = prune_storage_task.apply().get()
    assert counts == {"quarantine": 1, "artifact": 1, "missing_artifact_file": 1, "orphan_file": 1}
