import pytest

pytestmark = pytest.mark.django_db


def test_healthz_needs_no_key(api_client) -> None:
    response = api_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_url_gets_json_404(api_client) -> None:
    response = api_client.get("/no/such/page")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error_code"] == "NOT_FOUND"


def test_readyz_names_each_check(api_client, settings) -> None:
    settings.CLAMD_ADDRESS = "unix:///nonexistent/clamd.sock"
    response = api_client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert set(checks) == {"database", "broker", "clamd", "docling_models"}
    assert checks["database"]["ok"] is True
    assert checks["clamd"]["ok"] is False
    assert "unreachable" in checks["clamd"]["error"]
