import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.keys import create_api_key
from conftest import client_for

pytestmark = pytest.mark.django_db

MINIMAL_PDF = b"%PDF-1.4\n%%EOF\n"


@pytest.fixture
def low_limits(settings) -> None:
    settings.RATE_LIMITS = {
        "burst": "5/min",
        "sustained": "8/hour",
        "upload_burst": "2/min",
        "upload_sustained": "100/day",
    }


def get_statuses(client, count: int) -> list[int]:
    return [client.get("/v1/documents").status_code for _ in range(count)]


def test_burst_limit_gives_429_with_retry_after(low_limits) -> None:
    client = client_for(create_api_key("acme").token)
    assert get_statuses(client, 5) == [200] * 5
    response = client.get("/v1/documents")
    assert response.status_code == 429
    body = response.json()
    assert body["error_code"] == "RATE_LIMITED"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert body["details"]["retry_after_seconds"] == int(response["Retry-After"])


def test_sustained_limit_applies_after_burst_window(low_limits, monkeypatch) -> None:
    client = client_for(create_api_key("acme").token)
    clock = [1_000_000.0]
    monkeypatch.setattr("rest_framework.throttling.SimpleRateThrottle.timer", lambda self: clock[0])
    assert get_statuses(client, 5) == [200] * 5
    clock[0] += 61  # the burst window has passed, the hour has not
    assert get_statuses(client, 3) == [200] * 3
    response = client.get("/v1/documents")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 60


def test_limits_count_per_key(low_limits) -> None:
    first = client_for(create_api_key("acme").token)
    second = client_for(create_api_key("acme").token)
    assert get_statuses(first, 6)[-1] == 429
    assert second.get("/v1/documents").status_code == 200


def test_uploads_have_stricter_limit(low_limits) -> None:
    client = client_for(create_api_key("acme").token)

    def post() -> int:
        data = {"file": SimpleUploadedFile("a.pdf", MINIMAL_PDF), "ingest": "false"}
        return client.post("/v1/documents", data, format="multipart").status_code

    assert [post(), post()] == [201, 201]
    assert post() == 429
    assert client.get("/v1/documents").status_code == 200


def test_key_override_beats_tenant_and_default(low_limits) -> None:
    issued = create_api_key("acme")
    issued.api_key.tenant.rate_limits = {"burst": "3/min"}
    issued.api_key.tenant.save()
    client = client_for(issued.token)
    assert get_statuses(client, 4) == [200, 200, 200, 429]

    other = create_api_key("acme")
    other.api_key.rate_limits = {"burst": "10/min", "sustained": "100/hour"}
    other.api_key.save()
    assert get_statuses(client_for(other.token), 7) == [200] * 7
