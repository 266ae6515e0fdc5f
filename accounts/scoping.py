"""The one place where querysets are narrowed to what an API key may see."""

from django.db.models import Model, QuerySet

from .models import ApiKey


def scope_to_key(queryset: QuerySet[Model], api_key: ApiKey) -> QuerySet[Model]:
    """Filter a queryset of tenant-owned rows to the key's tenant.

    Rows of other tenants are simply absent, so a lookup by id answers 404
    and ids of other tenants cannot be probed.
    """
    return queryset.filter(tenant_id=api_key.tenant_id)
