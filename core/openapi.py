"""OpenAPI schema helpers: the API-key scheme, the error body and its responses."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

from .error_codes import REQUEST_ERRORS, markdown_table


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Send `Authorization: Api-Key <prefix>.<secret>`. Create keys with "
            "`manage.py create_api_key --tenant NAME`.",
        }


class ErrorSerializer(serializers.Serializer):
    error_code = serializers.ChoiceField(choices=sorted(REQUEST_ERRORS))
    message = serializers.CharField()
    details = serializers.DictField(required=False)


API_DESCRIPTION = (
    "Upload PDFs, follow their conversion jobs and download the artifacts "
    "(Docling JSON, Markdown, text, DocTags, chunks).\n\n"
    "Every error is JSON: `{\"error_code\": \"STABLE_CODE\", \"message\": \"...\", "
    "\"details\": {...}}`.\n\n" + markdown_table()
)

# Statuses every authenticated operation can return, and what each means there.
COMMON_ERRORS = {
    "401": "No API key, or an unknown or revoked one.",
    "403": "The key lacks the endpoint's scope.",
    "429": "Rate limit reached; see the Retry-After header.",
}


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Add the error body to every operation's error responses (a postprocessing hook)."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "Error",
        {
            "type": "object",
            "properties": {
                "error_code": {"type": "string", "enum": sorted(REQUEST_ERRORS)},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": {}},
            },
            "required": ["error_code", "message"],
        },
    )
    error_content = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, methods in result.get("paths", {}).items():
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            if operation.get("security") != [{}] and "security" in operation:
                for status, text in COMMON_ERRORS.items():
                    responses.setdefault(status, {"description": text})
            if "{" in path:
                responses.setdefault("404", {"description": "No such object for this caller."})
            responses.setdefault("400", {"description": "Invalid parameters."})
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = error_content
    return result
