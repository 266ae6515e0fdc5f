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
# "default" uses the engine the server is configured with.
OCR_ENGINES = ("default", "tesseract", "rapidocr")
LAYOUT_ENGINES = ("default", "heron", "cdla")
TABLE_MODES = ("accurate", "fast")
TOKENIZERS = ("all-minilm-l6-v2",)


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
    # The hybrid chunker counts tokens with this tokenizer. Only the one the
    # server ships is offered: a client must not name files on the server.
    tokenizer = serializers.ChoiceField(choices=TOKENIZERS, default=TOKENIZERS[0])


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
    ocr_engine = serializers.ChoiceField(choices=OCR_ENGINES, default="default")
    force_full_page_ocr = serializers.BooleanField(default=False)
    do_table_structure = serializers.BooleanField(default=False)
    table_mode = serializers.ChoiceField(choices=TABLE_MODES, default="accurate")
    layout_engine = serializers.ChoiceField(choices=LAYOUT_ENGINES, default="default")
    page_range = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=2,
        max_length=2,
        required=False,
        help_text="[first, last] page to convert, 1-based and inclusive.",
    )
    max_pages = serializers.IntegerField(min_value=1, required=False)
    max_file_size_mb = serializers.IntegerField(min_value=1, required=False)
    force = serializers.BooleanField(
        default=False, help_text="Convert again even when an identical job already succeeded."
    )
    exports = serializers.ListField(
        child=serializers.ChoiceField(choices=EXPORT_FORMATS),
        max_length=len(EXPORT_FORMATS),
        default=list(EXPORT_FORMATS),
    )
    chunking = ChunkingOptionsSerializer()

    def validate_page_range(self, value: list[int]) -> list[int]:
        if value[0] > value[1]:
            raise serializers.ValidationError("The first page must not come after the last page.")
        return value

    def validate_max_file_size_mb(self, value: int) -> int:
        if value > settings.UPLOAD_MAX_SIZE_MB:
            raise serializers.ValidationError(
                f"Must be at most the server limit of {settings.UPLOAD_MAX_SIZE_MB} MB."
            )
        return value

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
    # Server defaults first, then the client's values; a missing nested
    # object gets the nested defaults only if it is validated.
    defaults = settings.DOC_DEFAULT_OPTIONS
    raw = {
        **defaults,
        **raw,
        "chunking": {**defaults.get("chunking", {}), **(raw.get("chunking") or {})},
    }
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
    options.setdefault("page_range", None)
    options.setdefault("max_file_size_mb", settings.UPLOAD_MAX_SIZE_MB)
    return options


def check_default_options(defaults: Any) -> None:
    """Raise ValueError when DOC_DEFAULT_OPTIONS would not validate."""
    if not isinstance(defaults, dict):
        raise ValueError("DOC_DEFAULT_OPTIONS must be a JSON object.")
    serializer = ConversionOptionsSerializer(data={"chunking": {}, **defaults})
    if not serializer.is_valid():
        raise ValueError(f"DOC_DEFAULT_OPTIONS is invalid: {serializer.errors}")
