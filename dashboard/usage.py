"""The usage report: what each tenant's jobs used, for billing.

A job counts on the UTC day it finished, in every terminal status, because
failed jobs used worker time too. Queued and running jobs are not counted
yet. Bytes are the size of the job's document and pages the job's
pages_total (its document's page count when it has none), so a document
converted twice counts twice. Sums, averages and p95 are computed in the
database: one grouped query for the rows and one for the totals.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Avg, Case, Count, F, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDate

from core.errors import ServiceError
from documents.models import IngestionJob

from .aggregates import PercentileCont, percentile_by_offset, supports_percentile_cont
from .stats import JOB_PAGES

Status = IngestionJob.Status

GROUP_BY_CHOICES = ("day", "key", "option")
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
TIMING_FIELDS = ("duration_ms", "scan_ms", "convert_ms", "export_ms", "chunk_ms")

GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "day": ("day",),
    "key": ("key_id", "key_name", "key_last4"),
    "option": ("do_ocr", "do_table_structure"),
}
COUNT_COLUMNS = ("jobs", "succeeded", "failed", "canceled", "quarantined", "pages", "bytes")
SPLIT_COLUMNS = ("ocr_on", "ocr_off", "table_structure_on", "table_structure_off")
TIMING_COLUMNS = tuple(
    f"{field}_{measure}" for field in TIMING_FIELDS for measure in ("sum", "avg", "p95")
)
METRIC_COLUMNS = (*COUNT_COLUMNS, *TIMING_COLUMNS, *SPLIT_COLUMNS)


@dataclass(frozen=True)
class UsageQuery:
    """A validated report request; `start` and `end` are inclusive UTC days."""

    start: date
    end: date
    group_by: str

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_before(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*GROUP_COLUMNS[self.group_by], *METRIC_COLUMNS)


def parse_usage_query(params: Mapping[str, str], today: date) -> UsageQuery:
    """Validate `from`, `to` (YYYY-MM-DD, inclusive) and `group_by`.

    Without dates the report covers the last DEFAULT_RANGE_DAYS days up to
    today. Raises ServiceError (400) naming the parameter.
    """
    end = parse_day(params, "to", today)
    if end == date.max:
        # The range ends before the next day, which date cannot represent.
        raise ServiceError(
            f"'to' must be before {date.max.isoformat()}.",
            error_code="INVALID_DATE_RANGE",
            details={"to": end.isoformat()},
        )
    try:
        default_start = end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    except OverflowError:
        default_start = date.min
    start = parse_day(params, "from", default_start)
    if start > end:
        raise ServiceError(
            f"'from' ({start.isoformat()}) is after 'to' ({end.isoformat()}).",
            error_code="INVALID_DATE_RANGE",
            details={"from": start.isoformat(), "to": end.isoformat()},
        )
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise ServiceError(
            f"The range covers {days} days; a report covers at most {MAX_RANGE_DAYS}. "
            "Request shorter ranges.",
            error_code="INVALID_DATE_RANGE",
            details={"days": days, "max_days": MAX_RANGE_DAYS},
        )
    group_by = params.get("group_by") or "day"
    if group_by not in GROUP_BY_CHOICES:
        raise ServiceError(
            f"Invalid group_by '{group_by[:20]}': use one of {', '.join(GROUP_BY_CHOICES)}.",
            error_code="INVALID_GROUP_BY",
            details={"group_by": group_by[:20], "choices": list(GROUP_BY_CHOICES)},
        )
    return UsageQuery(start=start, end=end, group_by=group_by)


def parse_day(params: Mapping[str, str], name: str, default: date) -> date:
    raw = params.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ServiceError(
            f"Invalid '{name}' date '{raw[:40]}': use YYYY-MM-DD, e.g. 2026-01-31.",
            error_code="INVALID_DATE_RANGE",
            details={"parameter": name, "value": raw[:40]},
        ) from exc


def option_state(option: str) -> Case:
    """Return 'on', 'off' or 'unset' for a boolean in the job's options_json.

    Jobs quarantined at upload have no options, hence 'unset'.
    """
    return Case(
        When(**{f"options_json__{option}": True}, then=Value("on")),
        When(**{f"options_json__{option}": False}, then=Value("off")),
        default=Value("unset"),
    )


def group_annotations(group_by: str) -> dict[str, Any]:
    if group_by == "day":
        return {"day": TruncDate("finished_at", tzinfo=UTC)}
    if group_by == "key":
        return {
            "key_id": F("created_by_key_id"),
            "key_name": F("created_by_key__name"),
            "key_last4": F("created_by_key__last4"),
        }
    return {"do_ocr": option_state("do_ocr"), "do_table_structure": option_state("do_table_structure")}


def metric_aggregates(with_percentiles: bool) -> dict[str, Any]:
    aggregates: dict[str, Any] = {
        "jobs": Count("id"),
        "succeeded": Count("id", filter=Q(status=Status.SUCCEEDED)),
        "failed": Count("id", filter=Q(status=Status.FAILED)),
        "canceled": Count("id", filter=Q(status=Status.CANCELED)),
        "quarantined": Count("id", filter=Q(status=Status.QUARANTINED)),
        "pages": Sum(JOB_PAGES),
        "bytes": Sum("document__size_bytes"),
        "ocr_on": Count("id", filter=Q(options_json__do_ocr=True)),
        "table_structure_on": Count("id", filter=Q(options_json__do_table_structure=True)),
    }
    for field in TIMING_FIELDS:
        aggregates[f"{field}_sum"] = Sum(field)
        aggregates[f"{field}_avg"] = Avg(field)
        if with_percentiles:
            aggregates[f"{field}_p95"] = PercentileCont(field, 0.95)
    return aggregates


def finish_metrics(values: dict[str, Any], group: QuerySet[IngestionJob] | None) -> dict[str, Any]:
    """Fill in zeros, rounding, the off-splits and (without percentile_cont) the p95s.

    `group` is the queryset of the row's jobs, used only for the percentile
    fallback; None means the row is empty.
    """
    metrics: dict[str, Any] = {}
    for column in COUNT_COLUMNS:
        metrics[column] = int(values.get(column) or 0)
    for field in TIMING_FIELDS:
        metrics[f"{field}_sum"] = int(values.get(f"{field}_sum") or 0)
        metrics[f"{field}_avg"] = round_or_none(values.get(f"{field}_avg"))
        p95 = values.get(f"{field}_p95")
        if p95 is None and group is not None and not supports_percentile_cont():
            p95 = percentile_by_offset(group, field, 0.95)
        metrics[f"{field}_p95"] = round_or_none(p95)
    ocr_on = int(values.get("ocr_on") or 0)
    table_on = int(values.get("table_structure_on") or 0)
    metrics["ocr_on"] = ocr_on
    metrics["ocr_off"] = metrics["jobs"] - ocr_on
    metrics["table_structure_on"] = table_on
    metrics["table_structure_off"] = metrics["jobs"] - table_on
    return metrics


def round_or_none(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)


def usage_report(jobs: QuerySet[IngestionJob], query: UsageQuery) -> dict[str, Any]:
    """Build the usage report over jobs the caller may see.

    `ocr_off` and `table_structure_off` count every job without that option
    on, including jobs with no options at all, so on + off = jobs.
    """
    finished = jobs.filter(
        status__in=IngestionJob.TERMINAL_STATUSES,
        finished_at__gte=query.start_at,
        finished_at__lt=query.end_before,
    )
    with_percentiles = supports_percentile_cont()
    annotations = group_annotations(query.group_by)
    group_names = list(annotations)
    grouped = (
        finished.annotate(**annotations)
        .order_by()
        .values(*group_names)
        .annotate(**metric_aggregates(with_percentiles))
    )

    rows = []
    for values in grouped:
        group_values = {name: values[name] for name in group_names}
        members = finished.annotate(**annotations).filter(**group_filter(group_values))
        rows.append({**format_group(group_values), **finish_metrics(values, members)})
    if query.group_by == "day":
        rows = fill_missing_days(rows, query)
    rows.sort(key=lambda row: tuple(str(row[name]) for name in GROUP_COLUMNS[query.group_by]))

    total_values = finished.order_by().aggregate(**metric_aggregates(with_percentiles))
    totals = finish_metrics(total_values, finished)
    return {
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "group_by": query.group_by,
        "columns": list(query.columns),
        "rows": rows,
        "totals": totals,
    }


def group_filter(group_values: dict[str, Any]) -> dict[str, Any]:
    """Return filter arguments that select one group, with __isnull for a NULL value."""
    lookups: dict[str, Any] = {}
    for name, value in group_values.items():
        if value is None:
            lookups[f"{name}__isnull"] = True
        else:
            lookups[name] = value
    return lookups


def format_group(group_values: dict[str, Any]) -> dict[str, Any]:
    formatted = dict(group_values)
    if isinstance(formatted.get("day"), date):
        formatted["day"] = formatted["day"].isoformat()
    if formatted.get("key_id") is not None:
        formatted["key_id"] = str(formatted["key_id"])
    return formatted


def fill_missing_days(rows: list[dict[str, Any]], query: UsageQuery) -> list[dict[str, Any]]:
    """Add an all-zero row for each day of the range without jobs."""
    present = {row["day"] for row in rows}
    day = query.start
    while day <= query.end:
        if day.isoformat() not in present:
            rows.append({"day": day.isoformat(), **finish_metrics({}, None)})
        day += timedelta(days=1)
    return rows
