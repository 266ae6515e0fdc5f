from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class DocumentsConfig(AppConfig):
    name = "documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from .options import check_default_options

        try:
            check_default_options(settings.DOC_DEFAULT_OPTIONS)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from exc
