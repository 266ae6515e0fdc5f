"""GET /v1/reports/usage: JSON and CSV on a known set of jobs."""

import csv
import io
from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from accounts.keys import IssuedKey, create_api_key
from accounts.models import ApiKey, Tenant
from conftest import client_for
from dashboard.usage import COUNT_COLUMNS, METRIC_COLUMNS, SPLIT_COLUMNS

from .factories import Stage, Status, make_job

pytestmark = pytest.mark.django_db

OCR_ON_TABLE_OFF = {"do_ocr": True, "do_table_structure": False}
OCR_OFF_TABLE_ON = {"do_ocr": False, "do_table_structure": True}
OCR_ON_TABLE_ON = {"do_ocr": True, "do_table_structure": True}
ADDITIVE_COLUMNS = (*COUNT_COLUMNS, *SPLIT_COLUMNS, *(c for c in METRIC_COLUMNS if c.endswith("_sum")))


def at_day(days_ago: int, hour: int = 10) -> datetime:
    day = timezone.now().date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour), tzinfo=UTC)


@pytest.fixture
def keys() -> tuple[IssuedKey, IssuedKey]:
    first = create_api_key("acme", name="first", scopes=["dashboard:read"])
    second = create_api_key("acme", name="second", scopes=["dashboard:read"])
    tenant = first.api_key.tenant
    a, b = first.api_key, second.api_key
    make_job(
        tenant, key=a, finished_at=at_day(2), duration_ms=1000, scan_ms=100, convert_ms=700,
        export_ms=100, chunk_ms=100, pages=2, size_bytes=1000, options=OCR_ON_TABLE_OFF,
    )
    make_job(
        tenant, key=b, status=Status.FAILED, stage=Stage.CONVERTING, finished_at=at_day(2, 23),
        duration_ms=3000, scan_ms=200, convert_ms=2800, size_bytes=2000, options=OCR_OFF_TABLE_ON,
        error_code="PDF_ENCRYPTED",
    )
    make_job(
        tenant, key=a, finished_at=at_day(1, 0), duration_ms=2000, scan_ms=100, convert_ms=1500,
        export_ms=200, chunk_ms=200, pages=4, size_bytes=3000, options=OCR_ON_TABLE_ON,
    )
    make_job(
        tenant, key=a, status=Status.QUARANTINED, stage=Stage.SCANNING, finished_at=at_day(1),
        duration_ms=50, scan_ms=50, size_bytes=500, options={}, error_code="VIRUS_FOUND",
    )
    # Outside the range, not finished, or another tenant's: never counted.
    make_job(tenant, key=a, finished_at=at_day(5), duration_ms=9000, pages=50)
    make_job(tenant, key=a, status=Status.RUNNING, stage=Stage.CONVERTING, started_at=at_day(1))
    other = Tenant.objects.create(name="globex")
    make_job(other, finished_at=at_day(1), duration_ms=123_456, pages=99)
    return first, second


def report_url(**params: str) -> str:
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return f"/v1/reports/usage?{query}"


def range_params(group_by: str) -> dict[str, str]:
    return {
        "from": at_day(2).date().isoformat(),
        "to": at_day(1).date().isoformat(),
        "group_by": group_by,
    }


def test_usage_totals(keys) -> None:
    first, _ = keys
    body = client_for(first.token).get(report_url(**range_params("day"))).json()

    totals = body["totals"]
    assert totals["jobs"] == 4
    assert (totals["succeeded"], totals["failed"], totals["quarantined"]) == (2, 1, 1)
    assert totals["canceled"] == 0
    assert totals["pages"] == 6
    assert totals["bytes"] == 6500
    assert totals["duration_ms_sum"] == 6050
    assert totals["duration_ms_avg"] == 1512.5
    # durations 50, 1000, 2000, 3000: rank 2.85, so 2000 + 0.85 * 1000
    assert totals["duration_ms_p95"] == 2850.0
    assert totals["scan_ms_sum"] == 450
    assert totals["convert_ms_sum"] == 5000
    assert totals["export_ms_sum"] == 300
    assert totals["chunk_ms_sum"] == 300
    assert (totals["ocr_on"], totals["ocr_off"]) == (2, 2)
    assert (totals["table_structure_on"], totals["table_structure_off"]) == (2, 2)


@pytest.mark.parametrize("group_by", ["day", "key", "option"])
def test_usage_rows_add_up(keys, group_by: str) -> None:
    first, _ = keys
    body = client_for(first.token).get(report_url(**range_params(group_by))).json()

    assert body["group_by"] == group_by
    for column in ADDITIVE_COLUMNS:
        assert sum(row[column] for row in body["rows"]) == body["totals"][column], column


def test_usage_by_day(keys) -> None:
    first, _ = keys
    body = client_for(first.token).get(report_url(**range_params("day"))).json()

    by_day = {row["day"]: row for row in body["rows"]}
    assert list(by_day) == [at_day(2).date().isoformat(), at_day(1).date().isoformat()]
    first_day, second_day = by_day.values()
    assert (first_day["jobs"], first_day["duration_ms_sum"]) == (2, 4000)
    assert (second_day["jobs"], second_day["duration_ms_sum"]) == (2, 2050)
    assert second_day["convert_ms_avg"] == 1500.0


def test_usage_by_day_fills_empty_days(keys) -> None:
    first, _ = keys
    start = at_day(4).date().isoformat()
    body = client_for(first.token).get(report_url(**{"from": start, "to": start})).json()

    assert body["rows"] == [{"day": start, **{column: body["rows"][0][column] for column in METRIC_COLUMNS}}]
    assert body["rows"][0]["jobs"] == 0
    assert body["rows"][0]["duration_ms_p95"] is None


def test_usage_by_key(keys) -> None:
    first, second = keys
    body = client_for(first.token).get(report_url(**range_params("key"))).json()

    by_key = {row["key_id"]: row for row in body["rows"]}
    assert by_key[str(first.api_key.pk)]["jobs"] == 3
    assert by_key[str(first.api_key.pk)]["key_name"] == "first"
    assert by_key[str(first.api_key.pk)]["key_last4"] == first.api_key.last4
    assert by_key[str(second.api_key.pk)]["jobs"] == 1
    assert by_key[str(second.api_key.pk)]["failed"] == 1


def test_usage_by_option(keys) -> None:
    first, _ = keys
    body = client_for(first.token).get(report_url(**range_params("option"))).json()

    by_option = {(row["do_ocr"], row["do_table_structure"]): row["jobs"] for row in body["rows"]}
    assert by_option == {("on", "off"): 1, ("off", "on"): 1, ("on", "on"): 1, ("unset", "unset"): 1}


def test_usage_key_policy_hides_sibling(keys) -> None:
    first, second = keys
    Tenant.objects.filter(name="acme").update(isolation_policy=Tenant.IsolationPolicy.KEY)

    body = client_for(second.token).get(report_url(**range_params("key"))).json()

    assert body["totals"]["jobs"] == 1
    assert [row["key_id"] for row in body["rows"]] == [str(second.api_key.pk)]


@pytest.mark.parametrize("how", ["accept", "format"])
def test_usage_csv_matches_json(keys, how: str) -> None:
    first, _ = keys
    client = client_for(first.token)
    params = range_params("key")
    json_body = client.get(report_url(**params)).json()
    if how == "accept":
        response = client.get(report_url(**params), HTTP_ACCEPT="text/csv")
    else:
        response = client.get(report_url(**params, format="csv"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == json_body["columns"]
    assert len(rows) == len(json_body["rows"])
    for csv_row, json_row in zip(rows, json_body["rows"], strict=True):
        for column in json_body["columns"]:
            expected = "" if json_row[column] is None else str(json_row[column])
            assert csv_row[column] == expected, column
    for column in ADDITIVE_COLUMNS:
        assert sum(int(row[column]) for row in rows) == json_body["totals"][column], column


def test_usage_csv_neutralizes_formulas() -> None:
    issued = create_api_key("acme", name="=HYPERLINK(1)", scopes=["dashboard:read"])
    make_job(issued.api_key.tenant, key=issued.api_key, finished_at=timezone.now(), duration_ms=5)

    response = client_for(issued.token).get(report_url(group_by="key", format="csv"))

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["key_name"] == "'=HYPERLINK(1)"


@pytest.mark.parametrize(
    ("params", "error_code"),
    [
        ({"from": "2026-13-01"}, "INVALID_DATE_RANGE"),
        ({"to": "yesterday"}, "INVALID_DATE_RANGE"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "INVALID_DATE_RANGE"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "INVALID_DATE_RANGE"),
        ({"group_by": "tenant"}, "INVALID_GROUP_BY"),
    ],
)
def test_usage_rejects_bad_parameters(params: dict[str, str], error_code: str) -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])
    client = client_for(issued.token)

    as_json = client.get(report_url(**params))
    as_csv = client.get(report_url(**params, format="csv"))

    for response in (as_json, as_csv):
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert response.json()["error_code"] == error_code
        assert response.json()["message"]


def test_usage_default_range() -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])

    body = client_for(issued.token).get("/v1/reports/usage").json()

    today = timezone.now().date()
    assert body["to"] == today.isoformat()
    assert body["from"] == (today - timedelta(days=29)).isoformat()
    assert len(body["rows"]) == 30
    assert body["totals"]["jobs"] == 0


def test_usage_csv_keeps_generated_values() -> None:
    issued = create_api_key("acme", name="ops", scopes=["dashboard:read"])
    ApiKey.objects.filter(pk=issued.api_key.pk).update(last4="-LAc")
    make_job(issued.api_key.tenant, key=issued.api_key, finished_at=timezone.now(), duration_ms=5)

    response = client_for(issued.token).get(report_url(group_by="key", format="csv"))

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["key_last4"] == "-LAc"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"to": "9999-12-31"}, 400),
        ({"from": "9999-12-30", "to": "9999-12-30"}, 200),
        ({"to": "0001-01-05"}, 200),
        ({"from": "0001-01-01", "to": "0001-01-01"}, 200),
    ],
)
def test_usage_extreme_dates(params: dict[str, str], status: int) -> None:
    issued = create_api_key("acme", scopes=["dashboard:read"])

    response = client_for(issued.token).get(report_url(**params))

    assert response.status_code == status, response.content
