"""The run basis (what the bus held when a run started) and the proof that ingest caught up with it."""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import delta, tables

PARTITION_OFFSETS = "array<struct<partition:int,start_offset:long,end_offset:long>>"
BASIS_SCHEMA = (f"run_id string, topic string, cluster_id string, topic_id string, captured_at timestamp, "
                f"partitions {PARTITION_OFFSETS}")
CAUGHT_UP_SCHEMA = ("run_id string, app_id string, topic string, proved_at timestamp, caught_up boolean, "
                    "committed_batch long, partitions array<struct<partition:int,committed_offset:long,"
                    "basis_end:long,lag:long>>")


def read_basis(spark: SparkSession, basis_path: str, run_id: str) -> dict | None:
    rows = tables.read_or_empty(spark, basis_path, BASIS_SCHEMA).where(F.col("run_id") == run_id).collect()
    if not rows:
        return None
    row = rows[0].asDict(recursive=True)
    return row


def ensure_basis(spark: SparkSession, basis_path: str, run_id: str, snapshot) -> dict:
    """A run has one basis: the first capture is recorded; later calls return it unchanged.

    ``snapshot`` is called only when no basis exists (it asks Kafka for the topic's current state).
    """
    existing = read_basis(spark, basis_path, run_id)
    if existing is not None:
        return existing
    return record_basis(spark, basis_path, run_id, snapshot())


def record_basis(spark: SparkSession, basis_path: str, run_id: str, snap: dict,
                 captured_at: datetime | None = None) -> dict:
    """Record the run's basis unless it has one already; returns the one recorded (the first capture).
    ``captured_at`` is when the snapshot was read (now, if not given)."""
    row = {**snap, "run_id": run_id, "captured_at": captured_at or datetime.now(timezone.utc)}
    frame = spark.createDataFrame([row], BASIS_SCHEMA)
    # txn keyed by run: two racing starters record one basis, never two.
    delta.append(frame, basis_path, "meta.run_basis", run_id, txn=(f"basis-{run_id}", 0))
    return read_basis(spark, basis_path, run_id)


def lag_per_partition(basis: dict, committed: dict[int, int]) -> list[dict]:
    """Lag = basis end minus committed position; a partition never read lags by all it held."""
    result = []
    for part in basis["partitions"]:
        position = committed.get(part["partition"], part["start_offset"])
        result.append({
            "partition": part["partition"],
            "committed_offset": committed.get(part["partition"]),
            "basis_end": part["end_offset"],
            "lag": max(0, part["end_offset"] - position),
        })
    return result


def record_caught_up(spark: SparkSession, path: str, run_id: str, app_id: str, basis: dict,
                     committed_batch: int | None, committed: dict[int, int]) -> dict:
    partitions = lag_per_partition(basis, committed)
    proof = {
        "run_id": run_id, "app_id": app_id, "topic": basis["topic"], "proved_at": datetime.now(timezone.utc),
        "caught_up": all(p["lag"] == 0 for p in partitions), "committed_batch": committed_batch,
        "partitions": partitions,
    }
    delta.append(spark.createDataFrame([proof], CAUGHT_UP_SCHEMA), path, "meta.caught_up", run_id)
    return proof
