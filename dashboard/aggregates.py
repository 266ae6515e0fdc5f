"""Percentiles computed by the database.

PostgreSQL has the ordered-set aggregate `percentile_cont`, so a percentile
is one more column of an aggregate query. SQLite has none; there the
percentile is read with two ORDER BY ... LIMIT/OFFSET queries per value,
which gives the same linear interpolation without loading the rows.
"""

import math
from typing import Any

from django.db import connections
from django.db.models import Aggregate, FloatField, Model, QuerySet


class PercentileCont(Aggregate):
    """PostgreSQL `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`.

    Rows where the expression is NULL are ignored, as in every SQL aggregate.
    Works with `filter=Q(...)`, which PostgreSQL adds as a FILTER clause.
    """

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    output_field = FloatField()
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        fraction = float(fraction)
        # The fraction is written into the SQL text, so it must be a plain number.
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"A percentile fraction must be between 0 and 1, got {fraction}.")
        super().__init__(expression, fraction=repr(fraction), **extra)

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        if connection.vendor != "postgresql":
            raise NotImplementedError(
                "percentile_cont needs PostgreSQL; use percentile_by_offset on other databases."
            )
        return super().as_sql(compiler, connection, **extra_context)


def supports_percentile_cont(using: str = "default") -> bool:
    return connections[using].vendor == "postgresql"


def percentile_by_offset(queryset: QuerySet[Model], field: str, fraction: float) -> float | None:
    """Compute the `percentile_cont` of `field` over the queryset on any database.

    Counts the non-NULL values, then fetches the one or two values around
    the rank `(n - 1) * fraction` with ORDER BY and OFFSET and interpolates
    between them, as PostgreSQL does. Returns None when there are no values.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"A percentile fraction must be between 0 and 1, got {fraction}.")
    values = queryset.filter(**{f"{field}__isnull": False}).order_by(field)
    count = values.count()
    if count == 0:
        return None
    rank = (count - 1) * fraction
    lower_index = math.floor(rank)
    upper_index = math.ceil(rank)
    around = list(values.values_list(field, flat=True)[lower_index : upper_index + 1])
    lower = float(around[0])
    upper = float(around[-1])
    return lower + (upper - lower) * (rank - lower_index)
