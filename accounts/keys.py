"""Create and verify API keys.

A token is `<prefix>.<secret>`: 8 random hex characters to find the row and
a 43-character URL-safe secret (256 bits). Because the secret is random and
long, a keyed HMAC-SHA256 is enough to store it; a slow password hash would
only slow every request down.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ALL_SCOPES, ApiKey, Tenant

PREFIX_BYTES = 4
SECRET_BYTES = 32
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    token: str


def hash_secret(secret: str) -> str:
    key = settings.API_KEY_HASH_SECRET.encode()
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def validate_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(
            f"Unknown scope(s): {', '.join(unknown)}. Valid scopes: {', '.join(ALL_SCOPES)}."
        )
    return sorted(set(scopes))


@transaction.atomic
def create_api_key(tenant_name: str, name: str = "", scopes: list[str] | None = None) -> IssuedKey:
    """Create the tenant if needed and a key for it; return the token once."""
    tenant, _ = Tenant.objects.get_or_create(name=tenant_name)
    scope_list = validate_scopes(scopes if scopes is not None else list(ALL_SCOPES))
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name,
        prefix=prefix,
        secret_hash=hash_secret(secret),
        last4=secret[-4:],
        scopes=scope_list,
    )
    return IssuedKey(api_key=api_key, token=f"{prefix}.{secret}")


def verify_token(token: str) -> ApiKey | None:
    """Return the active key the token belongs to, or None.

    A secret replaced by a rotation still matches until the grace period set
    at rotation ends.
    """
    prefix, dot, secret = token.partition(".")
    if not dot or not prefix or not secret:
        return None
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    # Hash even when no row matched, so timing does not tell prefixes apart.
    candidate = hash_secret(secret)
    if api_key is None or not api_key.active:
        return None
    if hmac.compare_digest(candidate, api_key.secret_hash):
        return api_key
    in_grace = (
        api_key.previous_secret_hash
        and api_key.previous_valid_until is not None
        and timezone.now() < api_key.previous_valid_until
    )
    if in_grace and hmac.compare_digest(candidate, api_key.previous_secret_hash):
        return api_key
    return None


@transaction.atomic
def rotate_api_key(api_key: ApiKey, grace: timedelta = timedelta(0)) -> IssuedKey:
    """Give the key a new secret; the old one works for `grace`, then stops.

    The prefix, scopes and history stay, so the key keeps its identity in
    the admin, logs and usage reports.
    """
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if not locked.active:
        raise ValueError("A revoked key cannot be rotated; create a new key instead.")
    secret = secrets.token_urlsafe(SECRET_BYTES)
    if grace > timedelta(0):
        locked.previous_secret_hash = locked.secret_hash
        locked.previous_valid_until = timezone.now() + grace
    else:
        locked.previous_secret_hash = ""
        locked.previous_valid_until = None
    locked.secret_hash = hash_secret(secret)
    locked.last4 = secret[-4:]
    locked.save()
    return IssuedKey(api_key=locked, token=f"{locked.prefix}.{secret}")


def revoke_api_key(api_key: ApiKey) -> None:
    """Stop the key at once, including any secret still in its grace period."""
    api_key.active = False
    api_key.revoked_at = timezone.now()
    api_key.previous_secret_hash = ""
    api_key.previous_valid_until = None
    api_key.save()


def find_key(reference: str) -> ApiKey:
    """Find a key by its prefix, or by a full token's prefix part."""
    prefix = reference.partition(".")[0]
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if api_key is None:
        raise ApiKey.DoesNotExist(f"No API key with prefix '{prefix}'.")
    return api_key


def touch_last_used(api_key: ApiKey) -> None:
    """Record use at most once a minute per key, not on every request."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
