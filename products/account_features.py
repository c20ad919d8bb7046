"""``account_features``: per-account rolling aggregates over 1/7/30 days as of the run's cut-off."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType, TimestampType

from checks import spec
from checks.spec import Check
from common.catalog import TableSpec
from products.model import Inputs, Product
from products.scopes import SECONDS_PER_DAY, events_in_window, run_rows, seconds_before, snapshot_rows, window_totals

VIEW = "transactions_view"
WINDOW_DAYS = (1, 7, 30)
LONGEST = max(WINDOW_DAYS)

SCHEMA = StructType([StructField(name, kind) for name, kind in (
    ("run_id", StringType()), ("as_of", TimestampType()), ("account_id", StringType()),
    ("txn_count_1d", LongType()), ("txn_count_7d", LongType()), ("txn_count_30d", LongType()),
    ("distinct_merchants_30d", LongType()), ("distinct_countries_30d", LongType()),
    ("card_not_present_share_30d", DoubleType()), ("last_event_at", TimestampType()),
    ("seconds_since_last_event", LongType()),
)])


def transform(inputs: Inputs, as_of: datetime, run_id: str) -> DataFrame:
    """Per account with an event in the 30 days up to ``as_of``: counts over 1/7/30 days and breadth."""
    age = seconds_before(as_of, F.col("event_time"))
    counts = [F.sum((age < days * SECONDS_PER_DAY).cast("long")).alias(f"txn_count_{days}d") for days in WINDOW_DAYS]
    aggregated = events_in_window(inputs[VIEW], as_of, LONGEST).groupBy("account_id").agg(
        *counts,
        F.count_distinct("merchant_id").alias(f"distinct_merchants_{LONGEST}d"),
        F.count_distinct("country").alias(f"distinct_countries_{LONGEST}d"),
        F.avg(F.col("card_not_present").cast("double")).alias(f"card_not_present_share_{LONGEST}d"),
        F.max("event_time").alias("last_event_at"),
    )
    return aggregated.select(
        F.lit(run_id).alias("run_id"), F.lit(as_of).alias("as_of"), "*",
        seconds_before(as_of, F.col("last_event_at")).alias("seconds_since_last_event"))


def totals(inputs: Inputs, as_of: datetime, _run_id: str) -> DataFrame:
    return window_totals(inputs[VIEW], as_of, LONGEST, "account_id")


def checks(run_id: str, as_of: datetime, expected: dict) -> list[Check]:
    found = [
        spec.not_null("as_of"), spec.between("txn_count_1d", 0, None), spec.between("txn_count_30d", 1, None),
        spec.at_least("txn_count_7d", "txn_count_1d"), spec.at_least("txn_count_30d", "txn_count_7d"),
        spec.between("card_not_present_share_30d", 0, 1),
        spec.between("seconds_since_last_event", 0, LONGEST * SECONDS_PER_DAY),
        spec.at_least("as_of", "last_event_at"),
        spec.row_count(expected["subjects"], where=snapshot_rows(run_id, as_of), scope="run at cut-off"),
    ]
    if expected["events"]:
        found.append(spec.sum_between("txn_count_30d", expected["events"], expected["events"],
                                      where=run_rows(run_id), scope="run"))
    return found


PRODUCT = Product(
    name="account_features",
    table=TableSpec("gold.account_features", "Per-account rolling aggregates as of each run's cut-off"),
    keys=("run_id", "account_id"), schema=SCHEMA, transform=transform, totals=totals, checks=checks,
    upstream=(VIEW,),
)
