"""``merchant_risk``: per-merchant fraud rates over 90 days from labels known at the run's cut-off."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from checks import spec
from checks.spec import Check
from common.catalog import TableSpec
from common.labels_pit import latest_labels_as_of
from products.model import Inputs, Product
from products.scopes import events_in_window, run_rows, snapshot_rows, window_totals

VIEW = "transactions_view"
LABELS = "labels.label_events"
WINDOW_DAYS = 90

SCHEMA = StructType([StructField(name, kind) for name, kind in (
    ("run_id", StringType()), ("as_of", TimestampType()), ("merchant_id", StringType()),
    ("window_days", IntegerType()), ("txn_count", LongType()), ("labelled_count", LongType()),
    ("fraud_count", LongType()), ("legitimate_count", LongType()), ("suspicious_count", LongType()),
    ("fraud_rate", DoubleType()), ("labelled_fraud_rate", DoubleType()),
    ("last_label_recorded_at", TimestampType()),
)])


def known_event_labels(labels: DataFrame, as_of: datetime) -> DataFrame:
    """The newest label per (account, event) recorded at or before ``as_of``; later labels and corrections never leak."""
    event_labels = labels.where(F.col("event_id").isNotNull())
    return latest_labels_as_of(event_labels, as_of).select(
        F.col("account_id"), F.col("event_id"), F.col("label"), F.col("recorded_at").alias("label_recorded_at"))


def transform(inputs: Inputs, as_of: datetime, run_id: str) -> DataFrame:
    """Per merchant over the 90 days up to ``as_of``: transactions, labels known at ``as_of``, fraud rates."""
    events = events_in_window(inputs[VIEW], as_of, WINDOW_DAYS).select("event_id", "account_id", "merchant_id")
    labelled = events.join(known_event_labels(inputs[LABELS], as_of), on=["account_id", "event_id"], how="left")
    count_of = lambda label: F.coalesce(F.sum((F.col("label") == label).cast("long")), F.lit(0))  # noqa: E731
    aggregated = labelled.groupBy("merchant_id").agg(
        F.count(F.lit(1)).alias("txn_count"), F.count("label").alias("labelled_count"),
        count_of("fraud").alias("fraud_count"), count_of("legitimate").alias("legitimate_count"),
        count_of("suspicious").alias("suspicious_count"), F.max("label_recorded_at").alias("last_label_recorded_at"),
    )
    return aggregated.select(
        F.lit(run_id).alias("run_id"), F.lit(as_of).alias("as_of"), "merchant_id",
        F.lit(WINDOW_DAYS).alias("window_days"), "txn_count", "labelled_count", "fraud_count", "legitimate_count",
        "suspicious_count", (F.col("fraud_count") / F.col("txn_count")).alias("fraud_rate"),
        F.when(F.col("labelled_count") > 0, F.col("fraud_count") / F.col("labelled_count")).alias("labelled_fraud_rate"),
        "last_label_recorded_at",
    )


def known_label_totals(labels: DataFrame, as_of: datetime) -> DataFrame:
    """Upper bounds for labels known at ``as_of``: labelled (account, event) pairs and those ever labelled fraud."""
    known = labels.where(F.col("event_id").isNotNull() & (F.col("recorded_at") <= F.lit(as_of)))
    subject = F.struct("account_id", "event_id")
    return known.agg(
        F.count_distinct(subject).alias("labelled"),
        F.count_distinct(F.when(F.col("label") == "fraud", subject)).alias("fraud"),
    )


def totals(inputs: Inputs, as_of: datetime, _run_id: str) -> DataFrame:
    window = window_totals(inputs[VIEW], as_of, WINDOW_DAYS, "merchant_id")
    return window.crossJoin(known_label_totals(inputs[LABELS], as_of))


def checks(run_id: str, as_of: datetime, expected: dict) -> list[Check]:
    where = run_rows(run_id)
    found = [
        spec.not_null("as_of"), spec.between("txn_count", 1, None),
        spec.at_least("txn_count", "labelled_count"), spec.at_least("labelled_count", "fraud_count"),
        spec.between("fraud_rate", 0, 1), spec.between("labelled_fraud_rate", 0, 1),
        # Point in time: no row may use a label recorded after its own cut-off.
        spec.at_least("as_of", "last_label_recorded_at"),
        spec.row_count(expected["subjects"], where=snapshot_rows(run_id, as_of), scope="run at cut-off"),
    ]
    if expected["events"]:
        found += [
            spec.sum_between("txn_count", expected["events"], expected["events"], where=where, scope="run"),
            spec.sum_between("labelled_count", 0, expected["labelled"], where=where, scope="run"),
            spec.sum_between("fraud_count", 0, expected["fraud"], where=where, scope="run"),
        ]
    return found


PRODUCT = Product(
    name="merchant_risk",
    table=TableSpec("gold.merchant_risk", "Per-merchant fraud rates from labels known at each run's cut-off"),
    keys=("run_id", "merchant_id"), schema=SCHEMA, transform=transform, totals=totals, checks=checks,
    upstream=(VIEW,), sources=(LABELS,),
)
