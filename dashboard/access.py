"""Viewers of the web dashboard, and the jobs each of them may see.

Two kinds of sign-in share Django's session:

- staff users (Django accounts with is_staff) see every tenant and can
  narrow the page to one;
- a tenant signs in once with an API key that has `dashboard:read`. The key
  is checked, and only its id and a digest of its current secret hash are
  kept in the server-side session. The browser keeps only the session
  cookie, not the key. Revoking or rotating the key, or removing the scope, ends the
  session on its next request.
"""

import uuid
from dataclasses import dataclass

from django.contrib.auth import logout
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import ApiKey, Scope, Tenant
from accounts.scoping import scope_to_key
from documents.models import IngestionJob

SESSION_KEY_ID = "dashboard_api_key_id"
SESSION_KEY_DIGEST = "dashboard_api_key_digest"
# A key session ends after this many seconds even while it is in use.
KEY_SESSION_SECONDS = 8 * 60 * 60
DIGEST_SALT = "dashboard.access.key-session"


@dataclass(frozen=True)
class Viewer:
    """The signed-in viewer: a staff user, or a tenant's API key.

    `tenant` is the tenant the page shows: the key's tenant, the tenant a
    staff user picked, or None for a staff user looking at every tenant.
    """

    is_staff: bool
    tenant: Tenant | None
    api_key: ApiKey | None = None
    username: str = ""

    @property
    def label(self) -> str:
        if self.api_key is not None:
            key_name = self.api_key.name or "API key"
            return f"{self.api_key.tenant.name} (key {key_name} …{self.api_key.last4})"
        return f"{self.username} (staff)"

    def jobs(self) -> QuerySet[IngestionJob]:
        """Return the jobs this viewer may see."""
        queryset = IngestionJob.objects.all()
        if self.api_key is not None:
            return scope_to_key(queryset, self.api_key)
        if self.tenant is not None:
            return queryset.filter(tenant=self.tenant)
        return queryset


def key_digest(api_key: ApiKey) -> str:
    return salted_hmac(DIGEST_SALT, api_key.secret_hash).hexdigest()


def start_key_session(request: HttpRequest, api_key: ApiKey) -> None:
    """Replace any session (staff or key) with one bound to this key."""
    logout(request)
    request.session[SESSION_KEY_ID] = str(api_key.pk)
    request.session[SESSION_KEY_DIGEST] = key_digest(api_key)
    request.session.set_expiry(KEY_SESSION_SECONDS)


def resolve_viewer(request: HttpRequest) -> Viewer | None:
    """Return the signed-in viewer, or None when the page needs a sign-in."""
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        return Viewer(is_staff=True, tenant=selected_tenant(request), username=user.get_username())

    key_id = request.session.get(SESSION_KEY_ID)
    if not key_id:
        return None
    api_key = ApiKey.objects.select_related("tenant").filter(pk=key_id, active=True).first()
    digest = request.session.get(SESSION_KEY_DIGEST, "")
    if (
        api_key is None
        or not constant_time_compare(digest, key_digest(api_key))
        or not api_key.has_scope(Scope.DASHBOARD_READ)
    ):
        request.session.flush()
        return None
    return Viewer(is_staff=False, tenant=api_key.tenant, api_key=api_key)


def selected_tenant(request: HttpRequest) -> Tenant | None:
    """Return the tenant in the `tenant` query parameter; None for all or an unknown id."""
    raw = request.GET.get("tenant", "")
    try:
        tenant_id = uuid.UUID(raw)
    except ValueError:
        return None
    return Tenant.objects.filter(pk=tenant_id).first()
