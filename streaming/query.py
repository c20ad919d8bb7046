"""Running a checkpointed query to its end, the same way for every stream (ingest, decide, cases).

Three things every stream needs and none should repeat:
- one runner per checkpoint at a time (a second one is refused naming the holder, before Spark starts);
- Spark's own failures turned into the project's errors, with a message and no JVM stack trace;
- a work-around for SPARK-55271 (Spark 4.1.1, the EMR 8.1.0 runtime): after a restart that replays an
  uncommitted batch, the Kafka source's progress metrics throw a NullPointerException *after* the
  replayed batch's ``commits/N`` was written. The query is restarted once, only when exactly that happened.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from common import tables
from common.errors import LedgerlaneError, ServiceError, StateDrift
from common.locks import FileLock
from streaming import checkpoint as ckpt

KAFKA_METRICS_NPE = "KafkaMicroBatchStream"


def error_text(exc: BaseException) -> str:
    """The message and the JVM stack trace of a captured Spark error (``str`` may omit the trace)."""
    return f"{getattr(exc, '_desc', '') or exc}\n{getattr(exc, '_stackTrace', '') or ''}"


def is_replay_metrics_bug(exc: BaseException) -> bool:
    """SPARK-55271: the Kafka source's metrics() dereferences offsets it never fetched on a replay."""
    text = error_text(exc)
    return "NullPointerException" in text and f"{KAFKA_METRICS_NPE}$.metrics" in text


def explain(exc: StreamingQueryException, checkpoint: str) -> LedgerlaneError:
    """A Spark streaming failure as one paragraph that says what happened and what to do."""
    text = error_text(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    if "Some data may have been lost" in text or "OFFSET_OUT_OF_RANGE" in text or "data loss" in text.lower():
        return StateDrift(
            f"the stream on checkpoint {checkpoint} found offsets it still needed deleted from the topic "
            "(retention, or a deleted and recreated topic); nothing of that batch was written. "
            "Start a new topic epoch if the loss is accepted (see docs/ingest.md, 'Starting over')")
    if "UnknownTopicOrPartition" in text or "Timeout" in first:
        return ServiceError(f"the stream on checkpoint {checkpoint} lost the Kafka broker: {first[:300]}")
    return LedgerlaneError(f"the stream on checkpoint {checkpoint} failed: {first[:500]}")


class BatchFunction:
    """Base of every ``foreachBatch`` function.

    - It remembers the project error that stopped a batch, so the runner re-raises that error (its
      message, its exit code) instead of Spark's wrapper of it.
    - A batch replayed after a restart whose receipt (always its last write) exists is complete: every
      write of it is durable, so nothing is computed again (a replay costs one small read, not a batch).
    """

    failure: LedgerlaneError | None = None
    replaying: int | None = None    # the uncommitted batch a restart replays (set by ``run_to_end``)
    receipts_path: str = ""         # the table whose row for a batch is that batch's last write
    app_id: str = ""

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            if batch_id == self.replaying and self.is_complete(batch.sparkSession, batch_id):
                return
            self.write(batch, batch_id)
        except LedgerlaneError as exc:
            self.failure = exc
            raise

    def is_complete(self, spark: SparkSession, batch_id: int) -> bool:
        if not self.receipts_path or not tables.exists(spark, self.receipts_path):
            return False
        receipts = spark.read.format("delta").load(self.receipts_path)
        return receipts.where((F.col("app_id") == self.app_id) & (F.col("batch_id") == batch_id)).limit(1).count() == 1

    def write(self, batch: DataFrame, batch_id: int) -> None:
        raise NotImplementedError


def run_to_end(spark: SparkSession, start: Callable[[], StreamingQuery], checkpoint: str,
               batch_function: BatchFunction | None = None) -> None:
    """Start the query, wait for its end, stop it however that ends; Spark errors become ours."""
    pending = ckpt.pending_batch(spark, checkpoint)
    if batch_function is not None:
        batch_function.replaying = pending
    for attempt in (1, 2):
        query = start()
        try:
            query.awaitTermination()
            return
        except StreamingQueryException as exc:
            replayed = pending is not None and pending in ckpt.batch_ids(spark, checkpoint, "commits")
            if attempt == 1 and replayed and is_replay_metrics_bug(exc):
                continue   # the replayed batch is committed; a fresh start takes the normal path
            if batch_function is not None and batch_function.failure is not None:
                raise batch_function.failure from None
            raise explain(exc, checkpoint) from None
        finally:
            query.stop()


@contextmanager
def exclusive(checkpoint: str) -> Iterator[None]:
    """Hold the checkpoint's runner lock for the block; a second runner is refused naming the holder."""
    if "://" in checkpoint and not checkpoint.startswith("file:"):
        # On object stores Spark's own metadata check refuses a second active query of a checkpoint.
        yield
        return
    folder = Path(checkpoint.removeprefix("file:"))
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with FileLock(folder / ".ledgerlane.lock", holder, what=f"checkpoint {checkpoint}"):
        yield
