from django import forms

from accounts.keys import verify_token
from accounts.models import ApiKey, Scope


class ApiKeyLoginForm(forms.Form):
    """Sign-in of a tenant with an API key that has the `dashboard:read` scope."""

    api_key = forms.CharField(
        label="API key",
        max_length=200,
        strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "placeholder": "prefix.secret"}),
    )

    def clean_api_key(self) -> str:
        token = self.cleaned_data["api_key"]
        api_key = verify_token(token)
        if api_key is None:
            raise forms.ValidationError(
                "This API key is unknown or revoked. Check that you pasted the whole key.",
                code="invalid_key",
            )
        if not api_key.has_scope(Scope.DASHBOARD_READ):
            raise forms.ValidationError(
                f"This API key lacks the scope '{Scope.DASHBOARD_READ.value}'. "
                "Ask the operator for a key with that scope.",
                code="scope_required",
            )
        self.verified_key = api_key
        return token

    def get_api_key(self) -> ApiKey:
        return self.verified_key
