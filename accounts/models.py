from django.db import models

from core.models import BaseModel


class Scope(models.TextChoices):
    DOCUMENTS_WRITE = "documents:write"
    DOCUMENTS_READ = "documents:read"
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    ARTIFACTS_READ = "artifacts:read"
    DASHBOARD_READ = "dashboard:read"


ALL_SCOPES: tuple[str, ...] = tuple(Scope.values)


class Tenant(BaseModel):
    """A customer of the service; every document, job and artifact has one.

    The isolation policy decides what a key of the tenant sees: every object
    of the tenant (`tenant`), or only the objects that key created (`key`).
    """

    class IsolationPolicy(models.TextChoices):
        TENANT = "tenant"
        KEY = "key"

    name = models.CharField(max_length=200, unique=True)
    isolation_policy = models.CharField(
        max_length=8, choices=IsolationPolicy.choices, default=IsolationPolicy.TENANT
    )
    rate_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text='Overrides of the default rates for every key of the tenant, '
        'e.g. {"burst": "30/min", "sustained": "1000/day", "upload": "10/min"}.',
    )
    artifact_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days a job's artifacts are kept before retention deletes them. "
        "Empty: the ARTIFACT_RETENTION_DAYS setting.",
    )

    class Meta(BaseModel.Meta):
        pass

    def __str__(self) -> str:
        return self.name


class ApiKey(BaseModel):
    """An API key of a tenant.

    The token a client sends is `<prefix>.<secret>`. Only the prefix (for
    lookup), the last four characters (for display) and an HMAC-SHA256 of the
    secret are stored; the full token is shown once, at creation.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    last4 = models.CharField(max_length=4)
    scopes = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # After a rotation the old secret keeps working until this time.
    previous_secret_hash = models.CharField(max_length=64, blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rate_limits = models.JSONField(
        default=dict,
        blank=True,
        help_text="Overrides of the tenant's and the default rates for this key only.",
    )

    class Meta(BaseModel.Meta):
        pass

    def __str__(self) -> str:
        return f"{self.name or 'key'} ({self.prefix}…{self.last4})"

    # DRF's IsAuthenticated-style checks read these from request.user.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def revoke(self) -> None:
        from .keys import revoke_api_key

        revoke_api_key(self)
