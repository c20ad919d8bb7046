"""Pure transforms of the batch lane: admitted events (+ labels) -> the three data products.

Every function here is ``DataFrame -> DataFrame``: no reads, writes or sessions. The ``select`` at the
end of each is the product's schema contract (``checks/suites.py`` holds the same contract for the checker).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from common.labels_pit import latest_labels_as_of

SECONDS_PER_DAY = 86_400
FEATURE_WINDOW_DAYS = (1, 7, 30)
MERCHANT_WINDOW_DAYS = 90
# ISO 4217 minor units of the contract's currencies: every one has 2 decimals except the yen.
ZERO_DECIMAL_CURRENCIES = ("JPY",)
CARD_NOT_PRESENT_CHANNELS = ("ecommerce", "moto")


def major_amount(amount_minor: Column, currency: Column) -> Column:
    """Minor units -> major units as an exact decimal (no floating point)."""
    minor = amount_minor.cast("decimal(20,2)")
    return F.when(currency.isin(*ZERO_DECIMAL_CURRENCIES), minor).otherwise(minor / 100).cast("decimal(20,2)")


def transactions_view(admitted: DataFrame, run_id: str) -> DataFrame:
    """The run's slice of admitted events, typed and enriched, with its Kafka lineage."""
    return admitted.where(F.col("run_id") == run_id).select(
        F.col("event_id"), F.col("account_id"), F.col("card_id"), F.col("merchant_id"),
        F.col("merchant_name"), F.col("mcc"), F.col("amount_minor"), F.col("currency"),
        major_amount(F.col("amount_minor"), F.col("currency")).alias("amount"),
        F.col("event_time"), F.col("event_date"), F.hour("event_time").alias("event_hour"),
        F.col("channel"), F.col("country"), F.col("card_present"),
        F.col("channel").isin(*CARD_NOT_PRESENT_CHANNELS).alias("card_not_present"),
        F.col("device_id"), F.col("ip_address"),
        F.col("topic").alias("source_topic"), F.col("partition").alias("source_partition"),
        F.col("offset").alias("source_offset"), F.col("admitted_at"),
        F.lit(run_id).alias("run_id"),
    )


def events_in_window(view: DataFrame, as_of: datetime, days: int) -> DataFrame:
    """Events in ``(as_of - days, as_of]``: nothing after the cut-off is ever seen."""
    return view.where((F.col("event_time") <= F.lit(as_of)) & (F.col("event_time") > F.lit(as_of - timedelta(days=days))))


def _seconds_before(as_of: datetime, moment: Column) -> Column:
    return F.lit(as_of).cast("long") - moment.cast("long")


def account_features(view: DataFrame, as_of: datetime, run_id: str) -> DataFrame:
    """Per account with an event in the 30 days up to ``as_of``: counts over 1/7/30 days and breadth."""
    age = _seconds_before(as_of, F.col("event_time"))
    counts = [F.sum((age < days * SECONDS_PER_DAY).cast("long")).alias(f"txn_count_{days}d")
              for days in FEATURE_WINDOW_DAYS]
    longest = max(FEATURE_WINDOW_DAYS)
    aggregated = events_in_window(view, as_of, longest).groupBy("account_id").agg(
        *counts,
        F.count_distinct("merchant_id").alias(f"distinct_merchants_{longest}d"),
        F.count_distinct("country").alias(f"distinct_countries_{longest}d"),
        F.avg(F.col("card_not_present").cast("double")).alias(f"card_not_present_share_{longest}d"),
        F.max("event_time").alias("last_event_at"),
    )
    return aggregated.select(
        F.lit(run_id).alias("run_id"), F.lit(as_of).alias("as_of"), F.col("account_id"),
        *[F.col(f"txn_count_{days}d") for days in FEATURE_WINDOW_DAYS],
        F.col(f"distinct_merchants_{longest}d"), F.col(f"distinct_countries_{longest}d"),
        F.col(f"card_not_present_share_{longest}d"), F.col("last_event_at"),
        _seconds_before(as_of, F.col("last_event_at")).alias("seconds_since_last_event"),
    )


def known_event_labels(labels: DataFrame, as_of: datetime) -> DataFrame:
    """The newest label per (account, event) recorded at or before ``as_of``; later labels and corrections never leak."""
    event_labels = labels.where(F.col("event_id").isNotNull())
    return latest_labels_as_of(event_labels, as_of).select(
        F.col("account_id"), F.col("event_id"), F.col("label"), F.col("recorded_at").alias("label_recorded_at"))


def merchant_risk(view: DataFrame, labels: DataFrame, as_of: datetime, run_id: str) -> DataFrame:
    """Per merchant over the 90 days up to ``as_of``: transactions, labels known at ``as_of``, fraud rates."""
    events = events_in_window(view, as_of, MERCHANT_WINDOW_DAYS).select("event_id", "account_id", "merchant_id")
    labelled = events.join(known_event_labels(labels, as_of), on=["account_id", "event_id"], how="left")
    count_of = lambda label: F.sum((F.col("label") == label).cast("long"))  # noqa: E731
    aggregated = labelled.groupBy("merchant_id").agg(
        F.count(F.lit(1)).alias("txn_count"), F.count("label").alias("labelled_count"),
        count_of("fraud").alias("fraud_count"), count_of("legitimate").alias("legitimate_count"),
        count_of("suspicious").alias("suspicious_count"), F.max("label_recorded_at").alias("last_label_recorded_at"),
    )
    return aggregated.select(
        F.lit(run_id).alias("run_id"), F.lit(as_of).alias("as_of"), F.col("merchant_id"),
        F.lit(MERCHANT_WINDOW_DAYS).alias("window_days"), F.col("txn_count"), F.col("labelled_count"),
        F.coalesce(F.col("fraud_count"), F.lit(0)).alias("fraud_count"),
        F.coalesce(F.col("legitimate_count"), F.lit(0)).alias("legitimate_count"),
        F.coalesce(F.col("suspicious_count"), F.lit(0)).alias("suspicious_count"),
        (F.coalesce(F.col("fraud_count"), F.lit(0)) / F.col("txn_count")).alias("fraud_rate"),
        F.when(F.col("labelled_count") > 0, F.col("fraud_count") / F.col("labelled_count")).alias("labelled_fraud_rate"),
        F.col("last_label_recorded_at"),
    )


def latest_snapshot(snapshots: DataFrame) -> DataFrame:
    """Rows of the newest (as_of, run_id) in a snapshot product (account_features, merchant_risk)."""
    newest = snapshots.agg(F.max(F.struct("as_of", "run_id")).alias("_newest"))
    return snapshots.join(newest, on=F.struct("as_of", "run_id") == F.col("_newest"), how="left_semi")
