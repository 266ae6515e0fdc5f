"""Every endpoint against every kind of caller, under both isolation policies.

Callers: no key, a revoked key, a key of another tenant, a key of the same
tenant without the endpoint's scope, and the right key. Under the `key`
policy a second key of the same tenant is also a stranger.
"""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.keys import create_api_key, revoke_api_key
from accounts.models import ALL_SCOPES, Tenant
from conftest import client_for
from documents.models import Artifact, IngestionJob

pytestmark = pytest.mark.django_db

MINIMAL_PDF = b"%PDF-1.4\n%%EOF\n"


def endpoints(document_id: str, job_id: str, artifact_id: str) -> list[tuple[str, str, str, int]]:
    """(method, path, scope, success status) of every object endpoint."""
    return [
        ("get", "/v1/documents", "documents:read", 200),
        ("get", f"/v1/documents/{document_id}", "documents:read", 200),
        ("post", f"/v1/documents/{document_id}/ingest", "documents:write", 201),
        ("get", f"/v1/jobs/{job_id}", "jobs:read", 200),
        ("get", f"/v1/artifacts?job_id={job_id}", "artifacts:read", 200),
        ("get", f"/v1/artifacts/{artifact_id}/download", "artifacts:read", 200),
    ]


@pytest.fixture
def world(settings, data_root, tmp_path):
    settings.RATE_LIMITS = {}
    owner = create_api_key("owner-tenant")
    client = client_for(owner.token)
    data = {"file": SimpleUploadedFile("a.pdf", MINIMAL_PDF)}
    body = client.post("/v1/documents", data, format="multipart").json()
    job = IngestionJob.objects.get(pk=body["job"]["id"])
    artifact_path = data_root / "artifacts" / str(job.tenant_id) / str(job.id) / "document.md"
    artifact_path.parent.mkdir(parents=True, exist_ok=True)
    artifact_path.write_text("# hello")
    artifact = Artifact.objects.create(
        tenant=job.tenant, created_by_key=owner.api_key, job=job, kind="markdown",
        storage_relpath=str(artifact_path.relative_to(data_root)),
        checksum_sha256="0" * 64, size_bytes=7, content_type="text/markdown; charset=utf-8",
    )
    return owner, endpoints(body["document"]["id"], str(job.id), str(artifact.id))


def call(client: APIClient, method: str, path: str):
    if method == "post":
        return client.post(path, {}, format="json")
    return client.get(path)


def assert_list_hides_objects(response, path: str) -> None:
    # A list returns 200 to a stranger, with no results.
    assert response.status_code == 200, path
    assert response.json()["count"] == 0, path


@pytest.mark.parametrize("policy", ["tenant", "key"])
def test_access_matrix(world, policy: str) -> None:
    owner, calls = world
    Tenant.objects.filter(pk=owner.api_key.tenant_id).update(isolation_policy=policy)
    revoked = create_api_key("owner-tenant")
    revoke_api_key(revoked.api_key)
    stranger = create_api_key("other-tenant")
    sibling = create_api_key("owner-tenant")

    for method, path, scope, success in calls:
        is_list = "?" in path or path == "/v1/documents"

        response = call(APIClient(), method, path)
        assert response.status_code == 401, path
        assert response.json()["error_code"] == "AUTHENTICATION_REQUIRED"

        response = call(client_for(revoked.token), method, path)
        assert response.status_code == 401, path
        assert response.json()["error_code"] == "INVALID_API_KEY"

        response = call(client_for(stranger.token), method, path)
        if is_list:
            assert_list_hides_objects(response, path)
        else:
            assert response.status_code == 404, path
            assert response.json()["error_code"] == "NOT_FOUND"

        other_scopes = [s for s in ALL_SCOPES if s != scope]
        unscoped = create_api_key("owner-tenant", scopes=other_scopes)
        response = call(client_for(unscoped.token), method, path)
        assert response.status_code == 403, path
        assert response.json()["error_code"] == "SCOPE_REQUIRED"
        assert response.json()["details"]["scope"] == scope

        response = call(client_for(sibling.token), method, path)
        if policy == "tenant":
            assert response.status_code == success, (path, response.content)
        elif is_list:
            assert_list_hides_objects(response, path)
        else:
            assert response.status_code == 404, path

        response = call(client_for(owner.token), method, path)
        assert response.status_code == success, (path, response.content)
