from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.errors import ServiceError

from .keys import touch_last_used, verify_token
from .models import ApiKey

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate `Authorization: Api-Key <prefix>.<secret>`.

    Both request.user and request.auth are the ApiKey, so views reach the
    tenant through request.auth.tenant.
    """

    def authenticate(self, request: Request) -> tuple[ApiKey, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, token = header.partition(" ")
        if keyword != KEYWORD or not token.strip():
            raise ServiceError(
                "The Authorization header must be 'Api-Key <token>'.",
                error_code="INVALID_API_KEY",
                status_code=401,
            )
        api_key = verify_token(token.strip())
        if api_key is None:
            raise ServiceError(
                "The API key is unknown or revoked. Create a new one with "
                "'manage.py create_api_key'.",
                error_code="INVALID_API_KEY",
                status_code=401,
            )
        touch_last_used(api_key)
        return api_key, api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


def require_api_key(request: Request) -> ApiKey:
    if not isinstance(request.auth, ApiKey):
        raise exceptions.NotAuthenticated()
    return request.auth
