"""Django admin: job retry, key creation, rotation and revocation, artifact downloads."""

import pytest
from django.contrib.admin import helpers
from django.contrib.auth.models import User
from django.test import Client

from accounts.keys import create_api_key, verify_token
from accounts.models import ApiKey, Tenant
from documents.models import IngestionJob
from documents.tests.factories import make_artifact

from .factories import Stage, Status, ago, make_job

pytestmark = pytest.mark.django_db

JOBS_URL = "/admin/documents/ingestionjob/"
KEYS_URL = "/admin/accounts/apikey/"


@pytest.fixture
def admin_client_logged_in() -> Client:
    User.objects.create_superuser("root", "root@example.invalid", "pw-root-1")
    client = Client()
    assert client.login(username="root", password="pw-root-1")
    return client


def action_post(client: Client, url: str, action: str, ids: list, **extra: str):
    data = {"action": action, helpers.ACTION_CHECKBOX_NAME: [str(pk) for pk in ids], **extra}
    return client.post(url, data, follow=True)


def secret_of(token: str) -> str:
    return token.partition(".")[2]


# --- jobs -----------------------------------------------------------------------

def test_job_changelist_columns(admin_client_logged_in) -> None:
    tenant = Tenant.objects.create(name="acme")
    make_job(tenant, finished_at=ago(minutes=1), duration_ms=1234)

    response = admin_client_logged_in.get(JOBS_URL)

    assert response.status_code == 200
    html = response.content.decode()
    for column in ("tenant", "document", "status", "stage", "duration ms", "started at", "finished at"):
        assert column in html.lower(), column


def test_retry_action_asks_then_retries(admin_client_logged_in) -> None:
    tenant = Tenant.objects.create(name="acme")
    failed = make_job(
        tenant, status=Status.FAILED, stage=Stage.SCANNING, finished_at=ago(minutes=1),
        duration_ms=10, error_code="SCANNER_UNAVAILABLE",
    )

    confirm = action_post(admin_client_logged_in, JOBS_URL, "retry_selected", [failed.pk])
    failed.refresh_from_db()
    assert "Yes, retry these jobs" in confirm.content.decode()
    assert failed.status == Status.FAILED

    done = action_post(
        admin_client_logged_in, JOBS_URL, "retry_selected", [failed.pk], confirm="yes"
    )

    failed.refresh_from_db()
    assert "1 job(s) queued again" in done.content.decode()
    assert failed.status == Status.QUEUED
    assert failed.attempt == 2
    assert failed.error_code == ""


def test_retry_action_reports_rejected_jobs(admin_client_logged_in) -> None:
    tenant = Tenant.objects.create(name="acme")
    succeeded = make_job(tenant, finished_at=ago(minutes=1), duration_ms=10)
    exhausted = make_job(
        tenant, status=Status.FAILED, finished_at=ago(minutes=1), duration_ms=10,
        error_code="TIMEOUT", attempt=4, max_retries=3,
    )

    response = action_post(
        admin_client_logged_in, JOBS_URL, "retry_selected", [succeeded.pk, exhausted.pk],
        confirm="yes",
    )

    html = response.content.decode()
    assert "JOB_NOT_RETRYABLE" in html
    assert "RETRY_LIMIT_REACHED" in html
    assert IngestionJob.objects.get(pk=exhausted.pk).status == Status.FAILED
    assert IngestionJob.objects.get(pk=succeeded.pk).status == Status.SUCCEEDED


def test_job_timings_are_read_only(admin_client_logged_in) -> None:
    tenant = Tenant.objects.create(name="acme")
    job = make_job(tenant, finished_at=ago(minutes=1), duration_ms=4321, error_code="X")

    html = admin_client_logged_in.get(f"{JOBS_URL}{job.pk}/change/").content.decode()

    for field in ("duration_ms", "scan_ms", "error_code", "error_message", "attempt"):
        assert f'name="{field}"' not in html, field
    assert "4321" in html


# --- artifacts ------------------------------------------------------------------

def test_artifact_download_for_staff(admin_client_logged_in) -> None:
    tenant = Tenant.objects.create(name="acme")
    job = make_job(tenant, finished_at=ago(minutes=1), duration_ms=10, filename="annual.pdf")
    artifact = make_artifact(job, data=b"# Annual report\n")

    changelist = admin_client_logged_in.get("/admin/documents/artifact/").content.decode()
    response = admin_client_logged_in.get(f"/admin/documents/artifact/{artifact.pk}/download/")

    assert f"/admin/documents/artifact/{artifact.pk}/download/" in changelist
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"# Annual report\n"
    assert 'filename="annual.md"' in response["Content-Disposition"]


def test_artifact_download_needs_staff() -> None:
    tenant = Tenant.objects.create(name="acme")
    job = make_job(tenant, finished_at=ago(minutes=1), duration_ms=10)
    artifact = make_artifact(job)
    User.objects.create_user("plain", password="pw-plain-1")
    client = Client()
    client.login(username="plain", password="pw-plain-1")

    response = client.get(f"/admin/documents/artifact/{artifact.pk}/download/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_artifact_download_of_missing_file(admin_client_logged_in) -> None:
    tenant = Tenant.objects.create(name="acme")
    job = make_job(tenant, finished_at=ago(minutes=1), duration_ms=10)
    artifact = make_artifact(job, with_file=False)

    response = admin_client_logged_in.get(
        f"/admin/documents/artifact/{artifact.pk}/download/", follow=True
    )

    assert response.status_code == 200
    assert "ARTIFACT_GONE" in response.content.decode()


# --- API keys -------------------------------------------------------------------

def test_create_key_shows_token_once(admin_client_logged_in) -> None:
    response = admin_client_logged_in.post(
        f"{KEYS_URL}add/",
        {"new_tenant": "initech", "name": "etl", "scopes": ["documents:write", "jobs:read"]},
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    token = response.context["issued"][0].token
    assert token in response.content.decode()
    api_key = verify_token(token)
    assert api_key is not None
    assert api_key.tenant.name == "initech"
    assert api_key.scopes == ["documents:write", "jobs:read"]
    for url in (KEYS_URL, f"{KEYS_URL}{api_key.pk}/change/", f"{KEYS_URL}{api_key.pk}/history/"):
        html = admin_client_logged_in.get(url).content.decode()
        assert secret_of(token) not in html, url
        assert api_key.last4 in html, url


def test_create_key_needs_one_tenant(admin_client_logged_in) -> None:
    Tenant.objects.create(name="acme")

    response = admin_client_logged_in.post(
        f"{KEYS_URL}add/", {"new_tenant": "", "name": "etl", "scopes": ["jobs:read"]}
    )

    assert response.status_code == 200
    assert "Choose an existing tenant or name a new one" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_rotate_action_issues_new_secret(admin_client_logged_in) -> None:
    issued = create_api_key("acme", name="laptop")

    confirm = action_post(admin_client_logged_in, KEYS_URL, "rotate_selected", [issued.api_key.pk])
    assert "Yes, rotate" in confirm.content.decode()
    assert verify_token(issued.token) is not None

    done = action_post(
        admin_client_logged_in, KEYS_URL, "rotate_selected", [issued.api_key.pk],
        confirm="yes", grace_hours="0",
    )

    new_token = done.context["issued"][0].token
    assert new_token in done.content.decode()
    assert new_token != issued.token
    assert verify_token(issued.token) is None
    assert verify_token(new_token).pk == issued.api_key.pk
    changelist = admin_client_logged_in.get(KEYS_URL).content.decode()
    assert secret_of(new_token) not in changelist
    assert secret_of(issued.token) not in changelist
    assert f"…{new_token[-4:]}" in changelist


def test_rotate_action_with_grace(admin_client_logged_in) -> None:
    issued = create_api_key("acme")

    done = action_post(
        admin_client_logged_in, KEYS_URL, "rotate_selected", [issued.api_key.pk],
        confirm="yes", grace_hours="24",
    )

    assert verify_token(issued.token) is not None
    assert verify_token(done.context["issued"][0].token) is not None


def test_rotate_action_rejects_unknown_grace(admin_client_logged_in) -> None:
    issued = create_api_key("acme")

    response = action_post(
        admin_client_logged_in, KEYS_URL, "rotate_selected", [issued.api_key.pk],
        confirm="yes", grace_hours="9999",
    )

    assert "Invalid grace period" in response.content.decode()
    assert verify_token(issued.token) is not None


def test_revoke_action(admin_client_logged_in) -> None:
    issued = create_api_key("acme")

    confirm = action_post(admin_client_logged_in, KEYS_URL, "revoke_selected", [issued.api_key.pk])
    assert verify_token(issued.token) is not None
    assert "Yes, revoke" in confirm.content.decode()
    done = action_post(
        admin_client_logged_in, KEYS_URL, "revoke_selected", [issued.api_key.pk], confirm="yes"
    )

    assert "1 key(s) revoked" in done.content.decode()
    assert verify_token(issued.token) is None
    issued.api_key.refresh_from_db()
    assert issued.api_key.revoked_at is not None


def test_key_change_form_edits_scopes(admin_client_logged_in) -> None:
    issued = create_api_key("acme", name="laptop")
    url = f"{KEYS_URL}{issued.api_key.pk}/change/"

    html = admin_client_logged_in.get(url).content.decode()
    response = admin_client_logged_in.post(
        url, {"name": "laptop", "scopes": ["jobs:read", "dashboard:read"], "rate_limits": "{}"}
    )

    assert secret_of(issued.token) not in html
    assert issued.api_key.secret_hash not in html
    assert 'name="active"' not in html
    assert response.status_code == 302
    issued.api_key.refresh_from_db()
    assert issued.api_key.scopes == ["dashboard:read", "jobs:read"]


def test_job_admin_filters_crashed_conversions(admin_client, db) -> None:
    from accounts.keys import create_api_key
    from documents.models import Document, IngestionJob

    tenant = create_api_key("crash-admin").api_key.tenant
    document = Document.objects.create(tenant=tenant, sha256="0" * 64, size_bytes=1)
    crashed = IngestionJob.objects.create(
        tenant=tenant, document=document, status=IngestionJob.Status.FAILED, error_code="RESOURCE_LIMIT"
    )
    rejected = IngestionJob.objects.create(
        tenant=tenant, document=document, status=IngestionJob.Status.FAILED, error_code="PDF_CORRUPT"
    )
    html = admin_client.get("/admin/documents/ingestionjob/?crashed=yes").content.decode()
    assert str(crashed.id) in html
    assert str(rejected.id) not in html
