"""The OpenAPI schema, and schemathesis against a live Gunicorn with a valid key.

schemathesis generates requests from the schema (a bounded number per
operation) and checks that no response is a 5xx and that every response
matches what the schema documents: status code, content type and body.
"""

import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance
from hypothesis import HealthCheck, given, settings

from accounts.keys import create_api_key

EXAMPLES_PER_OPERATION = 25


@pytest.mark.django_db
def test_schema_documents_auth_and_errors(api_client) -> None:
    response = api_client.get("/v1/schema?format=json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "Authorization"
    assert "SCOPE_REQUIRED" in schema["info"]["description"]
    assert "VIRUS_FOUND" in schema["info"]["description"]
    upload = schema["paths"]["/v1/documents"]["post"]
    for status in ("201", "401", "403", "413", "415", "429"):
        assert status in upload["responses"], status
    error_ref = upload["responses"]["415"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref == "#/components/schemas/Error"
    assert "/v1/jobs/{id}/cancel" in schema["paths"]


@pytest.mark.django_db
def test_docs_page_uses_no_cdn(api_client) -> None:
    response = api_client.get("/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_api_matches_schema(gunicorn_server) -> None:
    base_url, _ = gunicorn_server
    token = create_api_key("fuzz").token
    api = schemathesis.openapi.from_url(f"{base_url}/v1/schema?format=json")
    headers = {"Authorization": f"Api-Key {token}"}
    checked = []
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case) -> None:
            # The schema cannot say "a PDF" or "a job that exists", so a request
            # that only looks valid may be rejected; every other check runs.
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
        checked.append(operation.label)
    print(f"schemathesis checked {len(checked)} operations")
    assert len(checked) >= 10
