"""Running a checkpointed query to its end, the same way for every stream (ingest, decide, cases).

Three things every stream needs and none should repeat:
- one runner per checkpoint at a time (a second one is refused naming the holder, before Spark starts);
- Spark's own failures turned into the project's errors, with a message and no JVM stack trace;
- a work-around for SPARK-55271 (Spark 4.1.1, the EMR 8.1.0 runtime): after a restart that replays an
  uncommitted batch, the Kafka source's progress metrics throw a NullPointerException *after* the
  replayed batch's ``commits/N`` was written. The query is restarted once, only when exactly that happened.

A continuous stream stops on SIGINT or SIGTERM: the query is stopped between polls (every write of a
batch is idempotent, so a batch cut short is replayed whole by the next start) and the door exits 130.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Generic, TypeVar

from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQuery

from common import tables
from common.errors import LedgerlaneError, ServiceError, StateDrift
from common.locks import FileLock
from common.spark import concurrently
from streaming import checkpoint as ckpt

T = TypeVar("T")
KAFKA_METRICS_NPE = "KafkaMicroBatchStream"
POLL_S = 1.0


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
            await_or_stop_on_signal(query)
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


def await_or_stop_on_signal(query: StreamingQuery) -> None:
    """Wait for the query's end; SIGINT or SIGTERM raise KeyboardInterrupt (the caller stops the query).

    PySpark's own SIGINT handler calls into the JVM while the main thread waits in ``awaitTermination``,
    which fails with a Py4J error instead of stopping; waiting in short polls under our own handlers does not.
    """
    if threading.current_thread() is not threading.main_thread():
        query.awaitTermination()
        return
    asked: list[int] = []
    previous = {number: signal.signal(number, lambda got, _frame: asked.append(got))
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not query.awaitTermination(POLL_S):
            if asked:
                raise KeyboardInterrupt(f"stopped by {signal.Signals(asked[0]).name}")
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


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


@dataclass(frozen=True)
class DeltaSource:
    """A stream over a Delta table, with what its checkpoint identity is checked against."""

    stream: str        # "decide", "cases": the app id prefix and the query name
    source: str        # the Delta table it reads
    checkpoint: str
    receipts: str      # its receipts (app_id, batch_id, …)
    apps: str          # meta.stream_apps
    max_files: int     # files per micro-batch


def source_table_id(spark: SparkSession, path: str) -> str:
    """The Delta table's own id: a table deleted and recreated under the same path has another."""
    from delta.tables import DeltaTable

    return str(DeltaTable.forPath(spark, path).detail().first()["id"])


def prior_work(spark: SparkSession, spec: DeltaSource, table_id: str) -> Callable[[], str | None]:
    """Receipts already written by checkpoints of this stream bound to this source table. The registry
    and the receipts' app ids are read side by side (both are small: a row per checkpoint, per batch)."""
    def describe_prior() -> str | None:
        apps, written = concurrently(
            spark,
            lambda: {row.app_id for row in tables.read_or_empty(spark, spec.apps, ckpt.APPS_SCHEMA)
                     .where((F.col("stream") == spec.stream) & F.col("binding").contains(table_id))
                     .select("app_id").collect()},
            lambda: (tables.read_or_empty(spark, spec.receipts, "app_id string, batch_id long")
                     .groupBy("app_id").count().collect()))
        batches = sum(row["count"] for row in written if row.app_id in apps)
        return f"{batches} {spec.stream} batches already ran over this source table" if batches else None
    return describe_prior


@dataclass(frozen=True)
class StreamRun(Generic[T]):
    identity: ckpt.CheckpointIdentity
    seconds: float   # how long the query ran
    checked: T       # what the stream's own ``preflight`` returned


def run_over_delta(spark: SparkSession, spec: DeltaSource, run_id: str,
                   make_writer: Callable[[ckpt.CheckpointIdentity, T], BatchFunction], *, until_caught_up: bool,
                   trigger_seconds: int, progress: Callable[[str], None],
                   preflight: Callable[[], T] = lambda: None) -> StreamRun[T]:
    """Check the checkpoint, then run the stream (availableNow, or a processing-time trigger).

    ``preflight`` is the stream's own reads and checks (e.g. the read gate). It runs beside the
    checkpoint's reads; its error is raised first, and a new checkpoint identity is recorded only once
    both passed, so a refused start writes nothing. Its result goes to ``make_writer``.
    """
    table_id = source_table_id(spark, spec.source)
    with exclusive(spec.checkpoint):
        for name in ckpt.remove_orphan_checksums(spark, spec.checkpoint):
            progress(f"removed {name}: the checksum of a file that no longer exists")
        checked, found = concurrently(
            spark, preflight,
            lambda: ckpt.check_identity(spark, spec.checkpoint, apps_path=spec.apps, receipts_path=spec.receipts,
                                        stream=spec.stream, binding={"source_table_id": table_id},
                                        prior_work=prior_work(spark, spec, table_id)))
        ckpt.assert_pending_batch_is_ours(spark, spec.checkpoint, run_id)
        identity = ckpt.record_identity(spark, found, spec.apps, run_id)
        writer = make_writer(identity, checked)
        stream = (spark.readStream.format("delta").option("maxFilesPerTrigger", spec.max_files).load(spec.source)
                  .writeStream.foreachBatch(writer).option("checkpointLocation", spec.checkpoint)
                  .queryName(f"{spec.stream}-{run_id}"))
        stream = (stream.trigger(availableNow=True) if until_caught_up
                  else stream.trigger(processingTime=f"{trigger_seconds} seconds"))
        progress(f"{spec.stream}: app id {identity.app_id}")
        started = time.monotonic()
        run_to_end(spark, stream.start, spec.checkpoint, writer)
    return StreamRun(identity, time.monotonic() - started, checked)
