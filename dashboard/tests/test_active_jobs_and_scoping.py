"""GET /v1/dashboard/jobs/active, and tenant scoping of every dashboard endpoint."""

import json

import pytest

from accounts.keys import create_api_key, revoke_api_key
from accounts.models import Tenant
from conftest import client_for

from .factories import Stage, Status, ago, make_job

pytestmark = pytest.mark.django_db

DASHBOARD_PATHS = (
    "/v1/dashboard/summary",
    "/v1/dashboard/workers",
    "/v1/dashboard/jobs/active",
    "/v1/reports/usage",
)


@pytest.fixture(autouse=True)
def no_broker(settings) -> None:
    # A closed loopback port, so worker status returns an error at once.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"


def test_active_jobs_progress_and_elapsed() -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])
    tenant = issued.api_key.tenant
    converting = make_job(
        tenant, status=Status.RUNNING, stage=Stage.CONVERTING, started_at=ago(seconds=90),
        pages=40, pages_done=10, filename="big.pdf",
    )
    scanning = make_job(tenant, status=Status.RUNNING, stage=Stage.SCANNING, started_at=ago(seconds=5))
    make_job(tenant, status=Status.QUEUED, stage=Stage.SCANNING)
    make_job(tenant, finished_at=ago(minutes=1), duration_ms=100)

    response = client_for(issued.token).get("/v1/dashboard/jobs/active")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    first, second = body["results"]
    assert first["job_id"] == str(converting.pk)
    assert first["stage"] == "CONVERTING"
    assert first["filename"] == "big.pdf"
    assert (first["pages_done"], first["pages_total"], first["progress"]) == (10, 40, 0.25)
    assert 89 <= first["elapsed_seconds"] < 120
    assert first["started_at"]
    assert second["job_id"] == str(scanning.pk)
    assert second["progress"] is None
    assert second["pages_total"] is None


def test_every_endpoint_needs_dashboard_scope() -> None:
    scoped_out = create_api_key("acme", scopes=["documents:read", "jobs:read", "artifacts:read"])
    revoked = create_api_key("acme", scopes=["dashboard:read"])
    revoke_api_key(revoked.api_key)

    for path in DASHBOARD_PATHS:
        assert client_for("").get(path).status_code == 401, path
        assert client_for(revoked.token).get(path).status_code == 401, path
        response = client_for(scoped_out.token).get(path)
        assert response.status_code == 403, path
        assert response.json()["error_code"] == "SCOPE_REQUIRED", path


@pytest.mark.parametrize("policy", ["tenant", "key"])
def test_every_endpoint_hides_other_tenants(policy: str) -> None:
    viewer = create_api_key("acme", scopes=["dashboard:read"])
    Tenant.objects.filter(name="acme").update(isolation_policy=policy)
    outsider_key = create_api_key("globex").api_key
    outsider = outsider_key.tenant
    secret_name = "globex-confidential.pdf"
    make_job(
        outsider, key=outsider_key, status=Status.RUNNING, stage=Stage.CONVERTING,
        started_at=ago(minutes=1), filename=secret_name,
    )
    failed = make_job(
        outsider, key=outsider_key, status=Status.FAILED, finished_at=ago(minutes=1),
        duration_ms=5000, error_code="GLOBEX_ERROR", filename=secret_name,
    )
    make_job(outsider, key=outsider_key, finished_at=ago(minutes=2), duration_ms=7000, pages=9)

    client = client_for(viewer.token)
    bodies = {path: client.get(path) for path in DASHBOARD_PATHS}

    for path, response in bodies.items():
        assert response.status_code == 200, path
        text = json.dumps(response.json())
        assert secret_name not in text, path
        assert str(failed.pk) not in text, path
        assert "GLOBEX_ERROR" not in text, path
        assert "globex" not in text, path
    summary = bodies["/v1/dashboard/summary"].json()
    assert set(summary["jobs"].values()) == {0}
    assert bodies["/v1/dashboard/jobs/active"].json()["count"] == 0
    assert bodies["/v1/reports/usage"].json()["totals"]["jobs"] == 0


def test_key_policy_hides_sibling_active_jobs() -> None:
    own = create_api_key("acme", scopes=["dashboard:read"])
    sibling = create_api_key("acme", scopes=["dashboard:read"])
    Tenant.objects.filter(name="acme").update(isolation_policy=Tenant.IsolationPolicy.KEY)
    mine = make_job(own.api_key.tenant, key=own.api_key, status=Status.RUNNING, started_at=ago(seconds=3))

    own_body = client_for(own.token).get("/v1/dashboard/jobs/active").json()
    sibling_body = client_for(sibling.token).get("/v1/dashboard/jobs/active").json()

    assert [row["job_id"] for row in own_body["results"]] == [str(mine.pk)]
    assert sibling_body["count"] == 0


def test_workers_endpoint_reports_broker_outage() -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])

    response = client_for(issued.token).get("/v1/dashboard/workers")

    assert response.status_code == 200
    body = response.json()
    assert body["workers_online"] == 0
    assert body["queues"] == {"docling": None}
    assert any("broker (Redis) did not respond" in error for error in body["errors"])


def test_workers_endpoint_reports_cache_outage(settings) -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])
    client = client_for(issued.token)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    # Rate limits count in the cache too, so they are switched off here.
    settings.RATE_LIMITS = {}

    response = client.get("/v1/dashboard/workers")

    assert response.status_code == 200
    errors = response.json()["errors"]
    assert "Worker heartbeats could not be read from the cache." in errors
    assert any("did not respond" in error for error in errors)
