import csv
import io
from typing import Any

from rest_framework.renderers import BaseRenderer

# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class ReportCSVRenderer(BaseRenderer):
    """Render a report's `rows` as CSV with a header of its `columns`.

    Selected by `Accept: text/csv` or `?format=csv`. Empty values are empty
    cells. Text that a spreadsheet would run as a formula gets a leading
    apostrophe, in the view's `csv_text_columns` (free text such as names)
    or, when the view names none, in every column.
    """

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        view = (renderer_context or {}).get("view")
        columns = data["columns"]
        text_columns = set(getattr(view, "csv_text_columns", None) or columns)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(columns)
        for row in data["rows"]:
            writer.writerow(
                [csv_cell(row.get(column), column in text_columns) for column in columns]
            )
        return buffer.getvalue().encode(self.charset)


def csv_cell(value: Any, is_text: bool) -> Any:
    if value is None:
        return ""
    if is_text and isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return f"'{value}"
    return value
