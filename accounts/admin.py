import logging
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from .keys import IssuedKey, create_api_key, revoke_api_key, rotate_api_key, validate_scopes
from .models import ALL_SCOPES, ApiKey, Scope, Tenant

logger = logging.getLogger(__name__)

# Choices of how long a rotated key's old secret keeps working, in hours.
ROTATION_GRACE_HOURS = (0, 1, 24, 168)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)


class ApiKeyCreateForm(forms.Form):
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.order_by("name"),
        required=False,
        help_text="An existing tenant, or leave empty and name a new one below.",
    )
    new_tenant = forms.CharField(max_length=200, required=False, label="New tenant name")
    name = forms.CharField(max_length=200, required=False, help_text="Where the key is used, e.g. 'laptop'.")
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, initial=list(ALL_SCOPES), widget=forms.CheckboxSelectMultiple
    )

    def clean(self) -> dict:
        data = super().clean()
        tenant, new_tenant = data.get("tenant"), (data.get("new_tenant") or "").strip()
        if bool(tenant) == bool(new_tenant):
            raise forms.ValidationError("Choose an existing tenant or name a new one, not both.")
        data["tenant_name"] = tenant.name if tenant else new_tenant
        return data


class ApiKeyChangeForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ("name", "scopes", "rate_limits")

    def clean_scopes(self) -> list[str]:
        return validate_scopes(self.cleaned_data["scopes"])


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys: create, rotate and revoke through accounts.keys.

    A full key appears only in the response to its creation or rotation,
    which is sent with no-store and never saved. Every other page shows the
    prefix and the last four characters of the secret.
    """

    list_display = ("name", "tenant", "masked", "active", "last_used_at", "created_at")
    list_filter = ("active", "tenant")
    list_select_related = ("tenant",)
    form = ApiKeyChangeForm
    fields = ("tenant", "name", "masked", "scopes", "rate_limits", "active", "last_used_at", "revoked_at")
    readonly_fields = ("tenant", "masked", "active", "last_used_at", "revoked_at")
    actions = ("rotate_selected", "revoke_selected")

    @admin.display(description="key")
    def masked(self, api_key: ApiKey) -> str:
        return f"{api_key.prefix}.…{api_key.last4}"

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """Create a key with accounts.keys.create_api_key and show its token once."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ApiKeyCreateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            issued = create_api_key(
                form.cleaned_data["tenant_name"],
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
            )
            self.log_addition(request, issued.api_key, "Created in the admin")
            logger.info("Admin user %s created API key %s", request.user.pk, issued.api_key.prefix)
            return self.issued_response(request, [issued], "API key created")
        context = {
            **self.admin_site.each_context(request),
            "title": "Create an API key",
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/accounts/apikey_create.html", context)

    def issued_response(
        self, request: HttpRequest, issued: list[IssuedKey], title: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "issued": issued,
        }
        response = TemplateResponse(request, "admin/accounts/apikey_issued.html", context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Rotate selected keys (new secrets)", permissions=["change"])
    def rotate_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        """Give each key a new secret with accounts.keys.rotate_api_key, after a confirmation.

        The old secret keeps working for the chosen grace period. The new
        tokens are shown once, on the response page.
        """
        if request.POST.get("confirm") != "yes":
            return self.confirmation(request, queryset, "rotate_selected", "Rotate API keys?")
        try:
            grace_hours = int(request.POST.get("grace_hours", "0"))
        except ValueError:
            grace_hours = -1
        if grace_hours not in ROTATION_GRACE_HOURS:
            self.message_user(request, "Invalid grace period; no key was rotated.", messages.ERROR)
            return None
        issued = []
        for api_key in queryset:
            try:
                issued.append(rotate_api_key(api_key, grace=timedelta(hours=grace_hours)))
            except ValueError as exc:
                logger.info("Admin rotation of API key %s rejected: %s", api_key.prefix, exc)
                self.message_user(request, f"{api_key} was not rotated: {exc}", messages.WARNING)
                continue
            self.log_change(request, api_key, f"Rotated in the admin; grace {grace_hours} h")
        logger.info("Admin user %s rotated %s API key(s)", request.user.pk, len(issued))
        if not issued:
            return None
        return self.issued_response(request, issued, "API keys rotated")

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_selected(
        self, request: HttpRequest, queryset: QuerySet[ApiKey]
    ) -> HttpResponse | None:
        """Stop each key at once with accounts.keys.revoke_api_key, after a confirmation."""
        if request.POST.get("confirm") != "yes":
            return self.confirmation(request, queryset, "revoke_selected", "Revoke API keys?")
        revoked = 0
        for api_key in queryset.filter(active=True):
            revoke_api_key(api_key)
            self.log_change(request, api_key, "Revoked in the admin")
            revoked += 1
        logger.info("Admin user %s revoked %s API key(s)", request.user.pk, revoked)
        self.message_user(request, f"{revoked} key(s) revoked.", messages.SUCCESS)
        return None

    def confirmation(
        self, request: HttpRequest, queryset: QuerySet[ApiKey], action: str, title: str
    ) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "keys": queryset.select_related("tenant"),
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "grace_hours": ROTATION_GRACE_HOURS if action == "rotate_selected" else (),
        }
        return TemplateResponse(request, "admin/accounts/apikey_confirmation.html", context)
