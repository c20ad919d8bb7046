"""Point-in-time label lookups in Spark: what was known about a subject at a given moment.

Pure ``DataFrame -> DataFrame`` transforms over label events shaped like ``labels.label_events``
(``label_event_id``, ``account_id``, ``event_id``, ``label``, ``recorded_at`` …). "Known at T" means
recorded at or before T; a label recorded later never leaks into an earlier cut-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

KNOWN_COLUMNS = ("label", "label_event_id", "label_recorded_at")
LABEL_INPUT = ("label", "label_event_id", "recorded_at")


def assert_columns(df: DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [name for name in needed if name not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; found {df.columns}")


def labels_as_of(
    events: DataFrame, labels: DataFrame, *, keys: Sequence[str] = ("account_id",), cutoff: str = "cutoff_at"
) -> DataFrame:
    """Each event row plus the newest label recorded at or before *its own* ``cutoff`` for its ``keys``.

    Adds ``label``, ``label_event_id``, ``label_recorded_at`` (null when nothing was known). One shuffle
    on ``keys``: labels and events are merged in time order per key, and each event takes the last
    label before it (labels sort before events at the same instant, ties by ``label_event_id``).
    """
    assert_columns(events, [*keys, cutoff], "events")
    assert_columns(labels, [*keys, *LABEL_INPUT], "labels")
    clashing = [name for name in KNOWN_COLUMNS if name in events.columns]
    if clashing:
        raise ValueError(f"events already have columns {clashing}; rename them before labels_as_of")
    known = F.struct(
        F.col("label"), F.col("label_event_id"), F.col("recorded_at").alias("label_recorded_at")
    )
    label_rows = labels.where(_all_present(keys)).select(
        *keys, F.col("recorded_at").alias("_at"), F.lit(0).alias("_kind"), F.col("label_event_id").alias("_seq"),
        known.alias("_known"), F.lit(None).cast(events.schema).alias("_event"),
    )
    event_rows = events.select(
        *keys, F.col(cutoff).alias("_at"), F.lit(1).alias("_kind"), F.lit(None).cast("bigint").alias("_seq"),
        F.lit(None).cast(label_rows.schema["_known"].dataType).alias("_known"), F.struct(*events.columns).alias("_event"),
    )
    timeline = Window.partitionBy(*keys).orderBy("_at", "_kind", "_seq").rowsBetween(Window.unboundedPreceding, 0)
    merged = label_rows.unionByName(event_rows).withColumn("_last", F.last("_known", ignorenulls=True).over(timeline))
    return merged.where(F.col("_kind") == 1).select("_event.*", *[F.col(f"_last.{name}").alias(name) for name in KNOWN_COLUMNS])


def _all_present(keys: Sequence[str]) -> Column:
    condition = F.lit(True)
    for key in keys:
        condition = condition & F.col(key).isNotNull()
    return condition


def latest_labels_as_of(
    labels: DataFrame, at: datetime | Column, *, subject: Sequence[str] = ("account_id", "event_id")
) -> DataFrame:
    """One row per subject: its newest label event recorded at or before ``at`` (same columns as the input)."""
    assert_columns(labels, [*subject, "recorded_at", "label_event_id"], "labels")
    cut = at if isinstance(at, Column) else F.lit(at)
    newest_first = Window.partitionBy(*subject).orderBy(F.col("recorded_at").desc(), F.col("label_event_id").desc())
    return (
        labels.where(F.col("recorded_at") <= cut)
        .withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank")
    )
