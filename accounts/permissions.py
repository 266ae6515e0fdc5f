from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from core.errors import ServiceError

from .models import ApiKey


class HasScopes(permissions.BasePermission):
    """Require an API key holding every scope in the view's `required_scopes`.

    A view declares `required_scopes = {"GET": "documents:read", ...}` per
    HTTP method. A method with no entry is closed, so a new endpoint cannot be
    left open by mistake.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise ServiceError(
                "This endpoint needs an API key: send 'Authorization: Api-Key <token>'.",
                error_code="AUTHENTICATION_REQUIRED",
                status_code=401,
            )
        required = getattr(view, "required_scopes", {}).get(request.method)
        if required is None:
            return False
        if not api_key.has_scope(required):
            raise ServiceError(
                f"This API key lacks the scope '{required}'.",
                error_code="SCOPE_REQUIRED",
                status_code=403,
                details={"scope": required},
            )
        return True
