import logging
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from .errors import json_error

logger = logging.getLogger(__name__)


class JsonExceptionMiddleware:
    """Answer any exception that escapes a view with a JSON 500, even in DEBUG.

    DRF views have their own handler; this catches the rest (admin, plain
    Django views) so that no client ever gets an HTML traceback.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(
        self, request: HttpRequest, exception: Exception
    ) -> HttpResponse | None:
        if isinstance(exception, (Http404, PermissionDenied, SuspiciousOperation, BadRequest)):
            # Django's handler404/403/400, set in the root URLconf, answer these.
            return None
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_error(
            "INTERNAL_ERROR", "The server failed to handle the request. Try again later.", 500
        )
