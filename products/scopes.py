"""Which rows of a product table a check looks at: one run's slice, or that slice at one cut-off."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.run import assert_run_id

SECONDS_PER_DAY = 86_400


def run_rows(run_id: str) -> str:
    # Safe to inline: assert_run_id admits only letters, digits, '.', '_' and '-'.
    return f"run_id = '{assert_run_id(run_id)}'"


def snapshot_rows(run_id: str, as_of: datetime) -> str:
    """The run's rows stamped with exactly this cut-off (epoch micros: independent of the session time zone)."""
    micros = round(as_of.astimezone(timezone.utc).timestamp() * 1_000_000)
    return f"{run_rows(run_id)} AND as_of = timestamp_micros({micros})"


def events_in_window(view: DataFrame, as_of: datetime, days: int) -> DataFrame:
    """Events in ``(as_of - days, as_of]``: nothing after the cut-off is ever seen."""
    return view.where((F.col("event_time") <= F.lit(as_of)) & (F.col("event_time") > F.lit(as_of - timedelta(days=days))))


def window_totals(view: DataFrame, as_of: datetime, days: int, key: str) -> DataFrame:
    """Events with ``as_of - days < event_time <= as_of`` and how many distinct ``key`` values they have.

    The checker's side of the window, written apart from ``events_in_window`` so one cannot hide the other's bug.
    """
    start = as_of - timedelta(days=days)
    inside = view.where((F.col("event_time") > F.lit(start)) & (F.col("event_time") <= F.lit(as_of)))
    return inside.agg(F.count(F.lit(1)).alias("events"), F.count_distinct(key).alias("subjects"))


def seconds_before(as_of: datetime, moment: Column) -> Column:
    return F.lit(as_of).cast("long") - moment.cast("long")
