"""The latency benchmark's baseline: the two streams a team would run instead of ledgerlane's.

Each runs as its own process on the same processing-time trigger as the governed streams, the way those
run (``ledgerlane stream ingest|decide``), so the two pipelines meet the same machine:

- ``ingest``: the careful Kafka -> Delta stream of ``benchmarks/ingest_bench.py`` (the JSON parsed into the
  contract's typed columns, required fields non-null, ``try_cast`` of the event time, duplicates dropped on
  the event id within a watermark of ``--lateness``, one append; as a stream it also drops event times in
  the future, which would move the watermark past every later event), keeping the Kafka timestamp;
- ``decide``: that table as a stream, the same policy on the feature versions certified when it starts,
  one Delta append without txn ids.

``--shape raw`` runs the floor instead: the same two loops doing no work a pipeline needs, the Kafka
records appended as they come (position, Kafka timestamp, bytes), then that table as a stream appended to a
second one (position and Kafka timestamp). No parsing, no deduplication, no policy: what two micro-batch
loops in series cost on this machine, whatever they do.

``--shape commits`` runs the floor with the commits the contract requires: the raw loops again, each batch
cached and counted once (the receipt's one aggregate), then written as the governed loops write it, with
(txnAppId, txnVersion) ids: three tables side by side (ingest: every record, then two 2% slices standing
for duplicates and quarantine; decide: every record, a 2% slice for actions, every record again for
audit), then a one-row receipt. Still no parsing, deduplication, policy or gate: what the idempotent
commits alone cost two loops in series. ``--shape plain-commits`` makes the same commits without txn ids:
what they would cost once Delta's txn lookup stops rebuilding the table state (delta-io/delta#6929).

Usage (by ``benchmarks/decide_bench.py``): ``python -m benchmarks.latency_baseline ingest|decide --config C
--home H --out DIR --trigger-seconds N [--lateness "8 days"] [--shape careful|raw|commits|plain-commits]``;
SIGINT or SIGTERM stops the query, exit code 130.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from functools import partial
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from benchmarks.ingest_bench import careful_pipeline
from checks import gate
from common.config import Settings, load_settings
from common.endpoints import kafka_bootstrap
from common.edge import guarded
from common.jobspec import MAX_TRIGGER_SECONDS
from common.spark import build_session, cached, concurrently
from streaming import decide, policy
from streaming import ingest as lane
from streaming.query import await_or_stop_on_signal

STREAMS = ("ingest", "decide")
SHAPES = ("careful", "raw", "commits", "plain-commits")
SLICE = 50            # the commit floor's small tables hold every SLICE-th record (2%)
POSITION = ("partition", "offset")   # a record's place on the topic: the raw floor's key


def events_path(out: Path) -> str:
    return str(out / "events")


def decisions_path(out: Path) -> str:
    return str(out / "decisions")


def checkpoint(out: Path, stream: str) -> str:
    return str(out / f"{stream}-checkpoint")


def ingest_frame(spark: SparkSession, settings: Settings, lateness: str, shape: str) -> DataFrame:
    source = lane.kafka_source(spark, settings, kafka_bootstrap(settings))
    keep = (*POSITION, F.col("timestamp").alias("kafka_timestamp"))
    if shape != "careful":
        return source.select(*keep, "value")
    return careful_pipeline(source, keep=keep, lateness=lateness, streaming=True)


def decide_frame(spark: SparkSession, settings: Settings, out: Path, shape: str) -> DataFrame:
    """The policy over the careful events; the features are read once, at the versions the gate certifies now.
    The floors pass each record's position and Kafka timestamp on, and read no feature."""
    if shape != "careful":
        return (spark.readStream.format("delta").option("maxFilesPerTrigger", settings.decision.max_files_per_trigger)
                .load(events_path(out)).select(*POSITION, "kafka_timestamp"))
    features, merchants = gate.certified_all(spark, settings.tables_root, [decide.FEATURES, decide.MERCHANTS])
    events = (spark.readStream.format("delta").option("maxFilesPerTrigger", settings.decision.max_files_per_trigger)
              .load(events_path(out)).withColumn("run_id", F.lit("baseline")))
    return policy.decide(events, policy.latest_per(features.frame, "account_id"),
                         policy.latest_per(merchants.frame, "merchant_id"), settings.decision)


class CommitFloorWriter:
    """The commit floor's batch function: the governed loops' commits, none of their work."""

    def __init__(self, stream: str, target: str, out: Path, txn: bool = True):
        # one process, one checkpoint, never restarted: a fresh app id is safe here
        self.app_id = f"floor-{stream}-{uuid.uuid4().hex}" if txn else None
        every, small = (lambda rows: rows), (lambda rows: rows.where(F.col("offset") % SLICE == 0))
        second, third = (small, small) if stream == "ingest" else (small, every)
        self.tables = [(target, every), (str(out / f"{stream}-second"), second), (str(out / f"{stream}-third"), third)]
        self.receipts = str(out / f"{stream}-receipts")

    def _append(self, frame: DataFrame, path: str, batch_id: int) -> None:
        writer = frame.write.format("delta").mode("append")
        if self.app_id is not None:
            writer = writer.option("txnAppId", self.app_id).option("txnVersion", str(batch_id))
        writer.save(path)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        with cached(batch) as rows:
            count = rows.count()
            concurrently(rows.sparkSession, *[partial(self._append, shape(rows), path, batch_id)
                                              for path, shape in self.tables])
        receipt = batch.sparkSession.createDataFrame([(batch_id, count)], "batch_id long, records long")
        self._append(receipt, self.receipts, batch_id)


def run(stream: str, settings: Settings, out: Path, trigger_seconds: int, lateness: str,
        shape: str = "careful") -> int:
    spark = build_session(settings, f"ledgerlane-latency-baseline-{shape}-{stream}")
    frame, target = ((ingest_frame(spark, settings, lateness, shape), events_path(out)) if stream == "ingest"
                     else (decide_frame(spark, settings, out, shape), decisions_path(out)))
    writer = frame.writeStream.option("checkpointLocation", checkpoint(out, stream))
    writer = (writer.foreachBatch(CommitFloorWriter(stream, target, out, txn=shape == "commits"))
              if shape.endswith("commits") else writer.format("delta").option("path", target))
    query = (writer.queryName(f"baseline-{shape}-{stream}").trigger(processingTime=f"{trigger_seconds} seconds")
             .start())
    try:
        await_or_stop_on_signal(query)
    except KeyboardInterrupt:
        return 130
    finally:
        query.stop()
    return 1   # a continuous query that ended by itself failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="latency_baseline", description=__doc__.splitlines()[0])
    parser.add_argument("stream", choices=STREAMS)
    parser.add_argument("--config", required=True, help="the lane's configuration file")
    parser.add_argument("--home", required=True, help="ledgerlane home with the running services")
    parser.add_argument("--out", required=True, help="folder of the baseline's tables and checkpoints")
    parser.add_argument("--trigger-seconds", type=int, required=True)
    parser.add_argument("--lateness", default="1 day",
                        help="the ingest watermark's delay: at least the event-time span of the traffic")
    parser.add_argument("--shape", choices=SHAPES, default="careful",
                        help="careful: what a team would run instead; raw: the floor, two loops doing no work; "
                        "commits: the floor with the governed loops' idempotent commits; plain-commits: "
                        "the same commits without txn ids")
    parser.add_argument("--verbose", action="store_true", help="print the stack trace of an error")
    args = parser.parse_args(argv)
    if not 1 <= args.trigger_seconds <= MAX_TRIGGER_SECONDS:
        parser.error(f"--trigger-seconds must be between 1 and {MAX_TRIGGER_SECONDS}, got {args.trigger_seconds}")
    # a bad configuration, no certified product: the message and its exit code, a trace only with --verbose
    return guarded(lambda: run(args.stream, load_settings(path=args.config, home=args.home), Path(args.out),
                               args.trigger_seconds, args.lateness, args.shape), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
