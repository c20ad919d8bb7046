"""Deduplicate validated events on ``event_id``: within the batch and against admitted history.

Pure DataFrame functions. The caller passes the slice of history that can hold a duplicate (the
admitted partitions for the batch's event dates), so the cost follows the batch, not the table.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

ADMITTED, DUPLICATE, QUARANTINED = "admitted", "duplicate", "quarantined"
CONFLICTING_DUPLICATE = "conflicting_duplicate"


def classify(validated: DataFrame, history: DataFrame) -> DataFrame:
    """Adds ``outcome`` (admitted | duplicate | quarantined) and ``duplicate_of``.

    ``history`` has ``event_id`` and ``payload_sha256`` of already admitted events. Among valid
    records, the first of an event id in (partition, offset) order is the candidate; an identical
    payload seen before is a producer-retry duplicate; a different payload is a conflicting
    duplicate, quarantined. Invalid records keep their validation reasons.

    Every record takes one path (no filter on ``reason`` and no union): a filter would be pushed
    down into validation's projection and re-evaluate its expressions once per reference.
    """
    valid = F.col("reason").isNull()
    first_in_batch = Window.partitionBy("_key").orderBy("partition", "offset")
    seen = history.select(
        F.col("event_id").alias("_h_event_id"), F.col("payload_sha256").alias("_h_sha")
    ).dropDuplicates(["_h_event_id"])
    ranked = (
        validated.withColumn("_key", F.when(valid, F.col("event_id")))   # invalid records never match
        .withColumn("_rank", F.row_number().over(first_in_batch))
        .withColumn("_first_sha", F.first("payload_sha256").over(first_in_batch))
        .join(seen, F.col("_key") == F.col("_h_event_id"), how="left")
    )
    is_new = valid & F.col("_h_sha").isNull() & (F.col("_rank") == 1)
    is_retry = valid & ~is_new & (F.col("payload_sha256") == F.coalesce(F.col("_h_sha"), F.col("_first_sha")))
    outcome = F.when(is_new, F.lit(ADMITTED)).when(is_retry, F.lit(DUPLICATE)).otherwise(F.lit(QUARANTINED))
    reason = F.when(~valid, F.col("reason")).when(is_new | is_retry, F.lit(None).cast("string")).otherwise(
        F.lit(CONFLICTING_DUPLICATE))
    reasons = F.when(~valid, F.col("reasons")).when(is_new | is_retry, F.array().cast("array<string>")).otherwise(
        F.array(F.lit(CONFLICTING_DUPLICATE)))
    duplicate_of = F.when(valid & ~is_new, F.when(F.col("_h_sha").isNotNull(), F.lit("history")).otherwise(F.lit("batch")))
    decided = {"reason": reason, "reasons": reasons}
    return ranked.select(
        *[decided.get(name, F.col(name)).alias(name) for name in validated.columns],
        outcome.alias("outcome"), duplicate_of.alias("duplicate_of"))
