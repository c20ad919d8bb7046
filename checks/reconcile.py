"""What a product must reconcile with: totals of its inputs at the exact Delta versions it was built from.

Pure ``DataFrame -> DataFrame`` (one row each). Written independently of ``jobs/transforms.py`` on
purpose: a checker that reused the transform's own filters could not catch a bug in them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def admitted_totals(admitted: DataFrame, run_id: str) -> DataFrame:
    """The run's admitted events: rows, amount total, and how many calendar days they span."""
    return admitted.where(F.col("run_id") == run_id).agg(
        F.count(F.lit(1)).alias("rows"), F.sum("amount_minor").alias("amount_minor"),
        (F.datediff(F.max("event_date"), F.min("event_date")) + 1).alias("days"),
    )


def window_totals(view: DataFrame, as_of: datetime, days: int, key: str) -> DataFrame:
    """Events with ``as_of - days < event_time <= as_of`` and how many distinct ``key`` values they have."""
    start = as_of - timedelta(days=days)
    inside = view.where((F.col("event_time") > F.lit(start)) & (F.col("event_time") <= F.lit(as_of)))
    return inside.agg(F.count(F.lit(1)).alias("events"), F.count_distinct(key).alias("subjects"))


def known_label_totals(labels: DataFrame, as_of: datetime) -> DataFrame:
    """Upper bounds for labels known at ``as_of``: labelled (account, event) pairs and those ever labelled fraud."""
    known = labels.where(F.col("event_id").isNotNull() & (F.col("recorded_at") <= F.lit(as_of)))
    subject = F.struct("account_id", "event_id")
    return known.agg(
        F.count_distinct(subject).alias("labelled"),
        F.count_distinct(F.when(F.col("label") == "fraud", subject)).alias("fraud"),
    )
