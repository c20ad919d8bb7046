"""Deduplicate validated events on ``event_id``: within the batch and against admitted history.

Pure DataFrame functions. The caller passes the slice of history that can hold a duplicate (the
admitted partitions for the batch's event dates), so the cost follows the batch, not the table.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

ADMITTED, DUPLICATE, QUARANTINED = "admitted", "duplicate", "quarantined"


def classify(validated: DataFrame, history: DataFrame) -> DataFrame:
    """Adds ``outcome`` (admitted | duplicate | quarantined) and ``duplicate_of``.

    ``history`` has ``event_id`` and ``payload_sha256`` of already admitted events. The first record
    of an event id in (partition, offset) order is the candidate; an identical payload seen before
    is a producer-retry duplicate; a different payload is a conflicting duplicate, quarantined.
    """
    first_in_batch = Window.partitionBy("event_id").orderBy("partition", "offset")
    seen = history.select(
        F.col("event_id").alias("_h_event_id"), F.col("payload_sha256").alias("_h_sha")
    ).dropDuplicates(["_h_event_id"])
    valid = (
        validated.where(F.col("reason").isNull())
        .withColumn("_rank", F.row_number().over(first_in_batch))
        .withColumn("_first_sha", F.first("payload_sha256").over(first_in_batch))
        .join(seen, F.col("event_id") == F.col("_h_event_id"), how="left")
    )
    original_sha = F.coalesce(F.col("_h_sha"), F.col("_first_sha"))
    is_new = F.col("_h_sha").isNull() & (F.col("_rank") == 1)
    same_payload = F.col("payload_sha256") == original_sha
    classified = valid.select(
        *[c for c in validated.columns if c not in ("reason", "reasons")],
        F.when(is_new, F.lit(ADMITTED)).when(same_payload, F.lit(DUPLICATE)).otherwise(F.lit(QUARANTINED)).alias("outcome"),
        F.when(is_new | same_payload, F.lit(None).cast("string")).otherwise(F.lit("conflicting_duplicate")).alias("reason"),
        F.when(~is_new, F.when(F.col("_h_sha").isNotNull(), F.lit("history")).otherwise(F.lit("batch"))).alias("duplicate_of"),
    ).withColumn("reasons", F.when(F.col("reason").isNull(), F.array().cast("array<string>")).otherwise(F.array("reason")))
    invalid = validated.where(F.col("reason").isNotNull()).withColumn("outcome", F.lit(QUARANTINED)).withColumn(
        "duplicate_of", F.lit(None).cast("string"))
    return invalid.unionByName(classified)
