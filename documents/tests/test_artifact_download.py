"""GET /v1/artifacts/{id}/download in both delivery modes, and after retention."""

import hashlib

import pytest
from django.utils import timezone

from accounts.keys import create_api_key
from conftest import client_for
from documents.models import Artifact
from documents.tests.factories import make_artifact, make_document, make_job, make_tenant

pytestmark = pytest.mark.django_db

MARKDOWN = "# Résumé\n\nSome text.\n".encode()


@pytest.fixture
def issued():
    return create_api_key("acme")


@pytest.fixture
def artifact(issued) -> Artifact:
    document = make_document(make_tenant("acme"))
    return make_artifact(make_job(document), data=MARKDOWN)


def download(issued, artifact: Artifact):
    return client_for(issued.token).get(f"/v1/artifacts/{artifact.id}/download")


def test_stream_sends_file_and_checksum(settings, issued, artifact) -> None:
    settings.ARTIFACT_DELIVERY = "stream"
    response = download(issued, artifact)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == MARKDOWN
    assert response["X-Checksum-SHA256"] == hashlib.sha256(MARKDOWN).hexdigest()
    assert response["Content-Disposition"] == 'attachment; filename="report.md"'
    assert "X-Accel-Redirect" not in response


def test_x_accel_sends_empty_body_and_redirect(settings, issued, artifact) -> None:
    settings.ARTIFACT_DELIVERY = "x-accel"
    settings.ARTIFACT_ACCEL_PREFIX = "/protected-artifacts/"
    response = download(issued, artifact)
    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == f"/protected-artifacts/{artifact.storage_relpath}"
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="report.md"'
    assert response["X-Checksum-SHA256"] == hashlib.sha256(MARKDOWN).hexdigest()


def test_x_accel_still_checks_the_key(settings, artifact) -> None:
    settings.ARTIFACT_DELIVERY = "x-accel"
    stranger = create_api_key("other-tenant")
    response = download(stranger, artifact)
    assert response.status_code == 404
    assert "X-Accel-Redirect" not in response


@pytest.mark.parametrize("delivery", ["stream", "x-accel"])
def test_deleted_artifact_gets_410(settings, issued, artifact, delivery: str) -> None:
    settings.ARTIFACT_DELIVERY = delivery
    Artifact.objects.filter(pk=artifact.pk).update(deleted_at=timezone.now())
    response = download(issued, artifact)
    assert response.status_code == 410
    assert response.json()["error_code"] == "ARTIFACT_GONE"
    assert "X-Accel-Redirect" not in response


@pytest.mark.parametrize("delivery", ["stream", "x-accel"])
def test_missing_file_gets_410(settings, issued, artifact, delivery: str) -> None:
    settings.ARTIFACT_DELIVERY = delivery
    artifact.get_path().unlink()
    response = download(issued, artifact)
    assert response.status_code == 410
    assert response.json()["error_code"] == "ARTIFACT_GONE"
