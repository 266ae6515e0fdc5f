"""Health probes and the JSON answers for Django's own error handlers."""

from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from .errors import json_error
from .readiness import run_checks


@extend_schema(
    auth=[],
    responses=inline_serializer("Health", {"status": serializers.CharField()}),
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def healthz(request: Request) -> Response:
    """Report that the process is up; checks nothing else."""
    return Response({"status": "ok"})


@extend_schema(
    auth=[],
    responses={
        status_code: inline_serializer(
            f"Readiness{status_code}",
            {"status": serializers.CharField(), "checks": serializers.DictField()},
        )
        for status_code in (200, 503)
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def readyz(request: Request) -> Response:
    """Check every dependency a job needs; 503 when any of them fails."""
    checks = run_checks()
    ready = all(check["ok"] for check in checks.values())
    return Response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error("BAD_REQUEST", "The request is malformed.", 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error("PERMISSION_DENIED", "You may not access this resource.", 403)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return json_error("NOT_FOUND", f"No resource at {request.path}. Check the URL.", 404)


def server_error(request: HttpRequest) -> JsonResponse:
    return json_error(
        "INTERNAL_ERROR", "The server failed to handle the request. Try again later.", 500
    )
