"""The one place where querysets are narrowed to what an API key may see."""

from typing import Any

from django.db.models import Model, QuerySet

from .models import ApiKey, Tenant


def scope_to_key(queryset: QuerySet[Model], api_key: ApiKey) -> QuerySet[Model]:
    """Filter a queryset of tenant-owned rows to what the key may see.

    Under the tenant's `tenant` policy that is every row of the key's tenant;
    under `key`, only rows the key created. Other rows are simply absent, so
    a lookup by id answers 404 and ids of other tenants cannot be probed.
    """
    queryset = queryset.filter(tenant_id=api_key.tenant_id)
    if api_key.tenant.isolation_policy == Tenant.IsolationPolicy.KEY:
        queryset = queryset.filter(created_by_key_id=api_key.pk)
    return queryset


class ScopedQuerysetMixin:
    """Give a DRF view a get_queryset() that always goes through scope_to_key.

    Views define base_queryset(); schema generation, which has no API key,
    gets an empty queryset of the right model.
    """

    request: Any

    def base_queryset(self) -> QuerySet[Any]:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet[Any]:
        from .authentication import require_api_key

        queryset = self.base_queryset()
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        return scope_to_key(queryset, require_api_key(self.request))
