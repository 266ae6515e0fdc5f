from django.contrib import admin

from .models import ApiKey, Tenant


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `manage.py create_api_key`; the admin never shows a secret."""

    list_display = ("name", "tenant", "masked", "active", "last_used_at", "created_at")
    list_filter = ("active", "tenant")
    list_select_related = ("tenant",)
    fields = ("tenant", "name", "masked", "scopes", "active", "last_used_at", "revoked_at")
    readonly_fields = ("masked", "last_used_at", "revoked_at")

    @admin.display(description="key")
    def masked(self, api_key: ApiKey) -> str:
        return f"{api_key.prefix}.…{api_key.last4}"

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False
