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


def test_readyz_hides_local_paths(api_client, settings) -> None:
    settings.CLAMD_ADDRESS = "unix:///var/secret/place/clamd.sock"
    body = api_client.get("/readyz").content.decode()
    assert "/var/secret/place" not in body


def test_redact_paths_keeps_urls_and_words() -> None:
    from core.readiness import redact_paths

    assert redact_paths("cannot open /srv/data/x.pdf: denied") == "cannot open <path>: denied"
    assert redact_paths("redis://127.0.0.1:6379/0 refused") == "redis://127.0.0.1:6379/0 refused"
    assert redact_paths("layout=cdla, ocr=tesseract") == "layout=cdla, ocr=tesseract"
