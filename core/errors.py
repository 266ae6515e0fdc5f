"""One JSON error shape for the whole API.

Every error body is `{"error_code": "STABLE_CODE", "message": "...",
"details": {...}}`. Clients match on `error_code`; the message is for people.
"""

import logging
import math
from typing import Any

from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ServiceError(exceptions.APIException):
    """An error with a stable code, raised by services and views alike."""

    status_code = status.HTTP_400_BAD_REQUEST
    error_code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        status_code: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=message)
        self.message = message
        if error_code is not None:
            self.error_code = error_code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or {}


def error_body(error_code: str, message: str, details: dict[str, Any] | None = None) -> dict:
    body: dict[str, Any] = {"error_code": error_code, "message": message}
    if details:
        body["details"] = details
    return body


def json_error(
    error_code: str, message: str, status_code: int, details: dict[str, Any] | None = None
) -> JsonResponse:
    return JsonResponse(error_body(error_code, message, details), status=status_code)


# Codes for DRF's own exceptions, which carry no stable code of their own.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "AUTHENTICATION_REQUIRED",
    exceptions.AuthenticationFailed: "INVALID_API_KEY",
    exceptions.PermissionDenied: "PERMISSION_DENIED",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "RATE_LIMITED",
    exceptions.ParseError: "MALFORMED_REQUEST",
    exceptions.ValidationError: "VALIDATION_ERROR",
}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Turn every exception a DRF view raises into the JSON error shape."""
    # Imported here: rest_framework.views imports the authentication classes,
    # which import this module.
    from rest_framework.views import exception_handler

    if isinstance(exc, ServiceError):
        response = Response(
            error_body(exc.error_code, exc.message, exc.details), status=exc.status_code
        )
        if exc.status_code == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = "Api-Key"
        return response

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        return Response(
            error_body("INTERNAL_ERROR", "The server failed to handle the request. Try again later."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )

    code = next(
        (code for cls, code in _DRF_CODES.items() if isinstance(exc, cls)), "BAD_REQUEST"
    )
    if isinstance(exc, exceptions.ValidationError):
        message = "The request is invalid: see details for each field."
        details = {"fields": response.data}
    elif isinstance(exc, exceptions.Throttled):
        wait = math.ceil(exc.wait or 1)
        message = f"Too many requests for this API key. Retry in {wait} seconds."
        details = {"retry_after_seconds": wait}
    else:
        message = str(getattr(exc, "detail", exc))
        details = None
    response.data = error_body(code, message, details)
    return response
