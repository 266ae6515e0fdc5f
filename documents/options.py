"""The conversion options a client may send, validated and resolved.

The resolved options (every default filled in) are stored on the job, so a
job's output can always be traced to the exact options that made it.
"""

from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.errors import ServiceError

OPTIONS_VERSION = 1
EXPORT_FORMATS = ("markdown", "text", "doctags")
CHUNKING_STRATEGIES = ("hierarchical", "hybrid", "none")


class StrictSerializer(serializers.Serializer):
    """A serializer that rejects keys it does not declare."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {key: ["Unknown option."] for key in unknown}
                )
        return super().to_internal_value(data)


class ChunkingOptionsSerializer(StrictSerializer):
    strategy = serializers.ChoiceField(choices=CHUNKING_STRATEGIES, default="hybrid")
    max_tokens = serializers.IntegerField(min_value=16, max_value=8192, default=256)
    merge_peers = serializers.BooleanField(default=True)


class ConversionOptionsSerializer(StrictSerializer):
    options_version = serializers.IntegerField(
        min_value=OPTIONS_VERSION, max_value=OPTIONS_VERSION, default=OPTIONS_VERSION
    )
    do_ocr = serializers.BooleanField(default=True)
    ocr_languages = serializers.ListField(
        child=serializers.RegexField(r"^[a-z]{3}(_[a-z]+)?$"),
        min_length=1,
        max_length=8,
        default=["eng"],
    )
    force_full_page_ocr = serializers.BooleanField(default=False)
    do_table_structure = serializers.BooleanField(default=False)
    max_pages = serializers.IntegerField(min_value=1, required=False)
    exports = serializers.ListField(
        child=serializers.ChoiceField(choices=EXPORT_FORMATS),
        max_length=len(EXPORT_FORMATS),
        default=list(EXPORT_FORMATS),
    )
    chunking = ChunkingOptionsSerializer()

    def validate_max_pages(self, value: int) -> int:
        if value > settings.MAX_PAGES:
            raise serializers.ValidationError(
                f"Must be at most the server limit of {settings.MAX_PAGES} pages."
            )
        return value


def resolve_options(raw: Any) -> dict[str, Any]:
    """Validate client options and return them with every default filled in."""
    if raw is None or raw == "":
        raw = {}
    if not isinstance(raw, dict):
        raise ServiceError(
            "Options must be a JSON object.", error_code="INVALID_OPTIONS"
        )
    # A missing nested object gets the nested defaults only if it is validated.
    raw = {"chunking": {}, **raw}
    serializer = ConversionOptionsSerializer(data=raw)
    if not serializer.is_valid():
        fields = ", ".join(sorted(serializer.errors))
        raise ServiceError(
            f"Invalid conversion options: {fields}. See details for each field.",
            error_code="INVALID_OPTIONS",
            details={"fields": serializer.errors},
        )
    options = dict(serializer.validated_data)
    options["chunking"] = dict(options["chunking"])
    options["exports"] = sorted(set(options["exports"]))
    options.setdefault("max_pages", settings.MAX_PAGES)
    return options
