from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        from django.conf import settings

        from . import openapi

        # The API description carries the error code table, built in one place.
        settings.SPECTACULAR_SETTINGS["DESCRIPTION"] = openapi.API_DESCRIPTION
