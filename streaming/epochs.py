"""Topic epochs: which incarnation of the topic (cluster id, topic id, partition count) ingest reads.

A checkpoint's offsets mean something only for the topic they were read from. A topic deleted and
recreated under the same name, a different cluster behind the same address, or a changed partition
count makes them meaningless: resuming would skip or re-read records and still report success.
Ingest therefore binds each checkpoint to an epoch recorded in ``meta.topic_epochs`` and refuses to
run when the bus no longer matches it. Starting over is one explicit act: ``--new-epoch --reason``,
recorded with who asked (the run id), when and why, and read through a fresh checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import delta, tables
from common.errors import ConfigError, StateDrift

TABLE = "meta.topic_epochs"
SCHEMA = ("topic string, epoch int, cluster_id string, topic_id string, partitions int, reason string, "
          "run_id string, started_at timestamp")
MAX_REASON = 500


def current(spark: SparkSession, path: str, topic: str) -> dict | None:
    """The newest epoch of ``topic``, or None before its first ingest."""
    rows = (tables.read_or_empty(spark, path, SCHEMA).where(F.col("topic") == topic)
            .orderBy(F.col("epoch").desc()).limit(1).collect())
    return rows[0].asDict() if rows else None


@dataclass(frozen=True)
class EpochPlan:
    """The epoch an ingest reads (``row``), and whether it is new: recorded by ``record`` once every
    check of the start has passed."""

    row: dict
    new: bool


def new_row(snapshot: dict, run_id: str, reason: str, number: int) -> dict:
    return {"topic": snapshot["topic"], "epoch": number, "cluster_id": snapshot["cluster_id"],
            "topic_id": snapshot["topic_id"], "partitions": len(snapshot["partitions"]), "reason": reason,
            "run_id": run_id, "started_at": datetime.now(timezone.utc)}


def record(spark: SparkSession, path: str, plan: EpochPlan) -> dict:
    """Record a new epoch (an existing one is returned as it is). Two racing starters record it once
    (txn per number); the row read back must then be the incarnation this start planned for."""
    if not plan.new:
        return plan.row
    row = plan.row
    delta.append(spark.createDataFrame([row], SCHEMA), path, TABLE, row["run_id"],
                 txn=(f"epoch-{row['topic']}", row["epoch"]))
    recorded = current(spark, path, row["topic"])
    if recorded is None or (recorded["epoch"], recorded["topic_id"], recorded["cluster_id"]) != (
            row["epoch"], row["topic_id"], row["cluster_id"]):
        found = "nothing" if recorded is None else (
            f"epoch {recorded['epoch']} of topic id {recorded['topic_id']} by run {recorded['run_id']}")
        raise StateDrift(
            f"ingest planned epoch {row['epoch']} of topic {row['topic']} (topic id {row['topic_id']}), but "
            f"meta.topic_epochs now holds {found}: another start recorded an epoch at the same time. "
            "This run reads nothing; start it again")
    return recorded


def differences(epoch: dict, snapshot: dict) -> list[str]:
    """What about the bus changed since the epoch was recorded, in words; empty when nothing did."""
    found = []
    if epoch["cluster_id"] != snapshot["cluster_id"]:
        found.append(f"cluster id {epoch['cluster_id']} -> {snapshot['cluster_id']} (another cluster behind "
                     "the same address)")
    if epoch["topic_id"] != snapshot["topic_id"]:
        found.append(f"topic id {epoch['topic_id']} -> {snapshot['topic_id']} (deleted and recreated)")
    if epoch["partitions"] != len(snapshot["partitions"]):
        found.append(f"partitions {epoch['partitions']} -> {len(snapshot['partitions'])}")
    return found


def assert_bus_matches(epoch: dict, snapshot: dict) -> None:
    changed = differences(epoch, snapshot)
    if changed:
        raise StateDrift(
            f"topic {snapshot['topic']} is not the one epoch {epoch['epoch']} read since {epoch['started_at']:%Y-%m-%d %H:%M} "
            f"UTC: {'; '.join(changed)}. Its checkpoint's offsets do not apply to it: resuming would skip or "
            "re-read records. Nothing was written. If you mean to start over on this topic, run ingest with "
            "--new-epoch --reason '...' under a new run id (docs/ingest.md, 'Starting over')")


def assert_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise ConfigError("--new-epoch needs --reason: why ingest starts over is part of the record")
    if len(text) > MAX_REASON:
        raise ConfigError(f"--reason is {len(text)} characters; at most {MAX_REASON} are kept")
    return text


def plan(snapshot: dict, run_id: str, epoch: dict | None, *, new_epoch: bool, reason: str | None) -> EpochPlan:
    """The epoch this ingest reads: the current one (``epoch``, read by ``current``; refused if the bus
    changed), or a new one on request (or on the topic's first ingest). Nothing is written here."""
    if new_epoch:
        why = assert_reason(reason)
        return EpochPlan(new_row(snapshot, run_id, why, 1 if epoch is None else epoch["epoch"] + 1), new=True)
    if epoch is None:
        return EpochPlan(new_row(snapshot, run_id, "first ingest of the topic", 1), new=True)
    assert_bus_matches(epoch, snapshot)
    return EpochPlan(epoch, new=False)
