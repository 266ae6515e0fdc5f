import logging
import re
import uuid
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from .errors import json_error
from .logging import bind_log_context, reset_log_context

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# Nginx's $request_id is 32 hex digits and a UUID has 36 characters; an id
# of other characters or length is replaced, so that no client can put
# arbitrary text into the logs.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")


class RequestIdMiddleware:
    """Give every request an id, log it on each line and return it to the client.

    The id comes from the X-Request-ID header (set by Nginx from
    $request_id) when it matches REQUEST_ID_PATTERN, else a new UUID4 hex.
    It is bound in the log context for the request, stored as
    `request.request_id` and sent back in the X-Request-ID response header.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request.headers.get(REQUEST_ID_HEADER, "")
        if not REQUEST_ID_PATTERN.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = bind_log_context(request_id=request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_log_context(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class JsonExceptionMiddleware:
    """Return a JSON 500 for any exception that escapes a view, even in DEBUG.

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
            # Django's handler404/403/400, set in the root URLconf, handle these.
            return None
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return json_error(
            "INTERNAL_ERROR", "The server failed to handle the request. Try again later.", 500
        )
