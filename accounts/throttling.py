"""Per-key rate limits, counted in the shared cache (Redis).

Each key has a burst and a sustained rate for every request, and a
stricter pair for uploads. The defaults come from settings; a tenant's
`rate_limits` overrides them for all its keys, and a key's own
`rate_limits` overrides both. Counts live in Redis, so every Gunicorn
worker sees the same numbers.
"""

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiKey

RATE_KINDS = ("burst", "sustained", "upload_burst", "upload_sustained")


def rate_for(api_key: ApiKey, kind: str) -> str | None:
    """Return the rate ("N/period") that applies to this key, or None for no limit."""
    for overrides in (api_key.rate_limits, api_key.tenant.rate_limits):
        if kind in (overrides or {}):
            return overrides[kind]
    return settings.RATE_LIMITS.get(kind)


class KeyRateThrottle(SimpleRateThrottle):
    kind = "burst"

    def __init__(self) -> None:
        # The rate depends on the key, so it is set per request in allow_request.
        self.rate = None
        self.num_requests = None
        self.duration = None

    def allow_request(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        self.rate = rate_for(api_key, self.kind)
        if not self.rate:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        return f"throttle:{self.kind}:{request.auth.pk}"


class BurstThrottle(KeyRateThrottle):
    kind = "burst"


class SustainedThrottle(KeyRateThrottle):
    kind = "sustained"


class UploadBurstThrottle(KeyRateThrottle):
    kind = "upload_burst"


class UploadSustainedThrottle(KeyRateThrottle):
    kind = "upload_sustained"


def validate_rate(value: str) -> None:
    """Raise ValueError unless value looks like DRF's "N/s|m|h|d" rate."""
    count, _, period = str(value).partition("/")
    if not count.isdigit() or int(count) < 1 or not period or period[0] not in "smhd":
        raise ValueError(
            f"Invalid rate '{value}': use a count and a period, e.g. '60/min' or '1000/day'."
        )
