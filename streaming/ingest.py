"""Ingest query: Kafka -> quarantine | duplicates | admitted Delta tables, one receipt per batch.

    spark-submit streaming/ingest.py --run-id r-20261122-1 --until-caught-up
    ledgerlane stream ingest --run-id r-20261122-1 --until-caught-up

No ack before write: Spark records ``commits/N`` only after ``IngestBatchWriter`` has returned, and
every Delta write in it carries (txnAppId, txnVersion=batch_id), so a replayed batch writes nothing twice.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from functools import partial
from datetime import date, datetime, timedelta, timezone
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming import StreamingQueryListener

from common import basis as run_basis
from common import catalog, delta, kafka_admin, tables
from common.config import Settings
from common.endpoints import kafka_bootstrap
from common.jobspec import Job, JobContext, Option, stream_options
from common.errors import LedgerlaneError, NotCaughtUp, StateDrift
from common.events import ALL_FIELDS
from common.faults import crash_if_requested
from common.run import assert_run_id
from common.secrets import spark_kafka_security
from common.spark import alongside, cached, concurrently, with_batch_values
from streaming import checkpoint as ckpt
from streaming import epochs, query
from streaming.dedup import ADMITTED, DUPLICATE, QUARANTINED, classify
from streaming.validate import Validator, event_dates

RECEIPT_SCHEMA = (
    "run_id string, app_id string, batch_id long, topic string, epoch int, topic_id string, "
    "partitions array<struct<partition:int,start_offset:long,end_offset:long,received:long,admitted:long,"
    "duplicates:long,quarantined:long>>, received long, admitted long, duplicates long, quarantined long, "
    "quarantined_by_reason map<string,long>, written_at timestamp"
)
SOURCE = ["topic", "partition", "offset", "kafka_timestamp"]
RECEIPT_COUNT = {ADMITTED: "admitted", DUPLICATE: "duplicates", QUARANTINED: "quarantined"}  # outcome -> receipt field
LINEAGE = ["run_id", "app_id", "batch_id"]


@dataclass(frozen=True)
class IngestTables:
    admitted: str
    duplicates: str
    quarantine: str
    receipts: str
    apps: str
    basis: str
    caught_up: str
    epochs: str

    @classmethod
    def from_root(cls, root: str) -> "IngestTables":
        loc = lambda name: catalog.location(root, name)  # noqa: E731
        return cls(loc("bronze.admitted_events"), loc("bronze.duplicate_events"), loc("bronze.quarantine"),
                   loc("meta.ingest_receipts"), loc(ckpt.APPS_TABLE), loc("meta.run_basis"), loc("meta.caught_up"),
                   loc(epochs.TABLE))


def topic_folder(settings: Settings) -> str:
    return f"{settings.checkpoints_root.rstrip('/')}/ingest/{settings.kafka.topic}"


def checkpoint_location(settings: Settings, epoch: int = 1) -> str:
    """Each topic epoch is read through its own checkpoint: offsets of one epoch mean nothing in another."""
    return f"{topic_folder(settings)}/epoch-{epoch}"


# ---- pure shaping of the classified batch ---------------------------------------------------------

def with_lineage(df: DataFrame, run_id: str, app_id: str, batch_id: int, clock: datetime) -> DataFrame:
    """The batch's lineage on every row, and its clock (``batch_clock``) for the tables that stamp a time."""
    return with_batch_values(df.withColumn("run_id", F.lit(run_id)).withColumn("app_id", F.lit(app_id)),
                             "batch_id long, batch_clock timestamp", (batch_id, clock))


def admitted_rows(classified: DataFrame) -> DataFrame:
    return classified.where(F.col("outcome") == ADMITTED).select(
        *ALL_FIELDS, F.to_date("event_time").alias("event_date"), *SOURCE, "payload_sha256", *LINEAGE,
        F.col("batch_clock").alias("admitted_at"))


def duplicate_rows(classified: DataFrame) -> DataFrame:
    return classified.where(F.col("outcome") == DUPLICATE).select(
        "event_id", *SOURCE, "payload_sha256", "duplicate_of", *LINEAGE)


def quarantine_rows(classified: DataFrame) -> DataFrame:
    """The raw bytes stay in ``value`` (binary); ``payload`` is a safe text rendering of them: valid
    UTF-8 as is, any invalid byte sequence replaced by U+FFFD, so every string reader can decode it."""
    return classified.where(F.col("outcome") == QUARANTINED).select(
        *SOURCE, F.make_valid_utf8("key").alias("key"), "value",
        F.make_valid_utf8(F.col("value").cast("string")).alias("payload"),
        "payload_sha256", "event_id", "account_id", "reason", "reasons",
        *LINEAGE, F.col("batch_clock").alias("quarantined_at"))


def outcome_counts(classified: DataFrame) -> DataFrame:
    """One small aggregate for the receipt: per (partition, outcome, reason), the count and offset range."""
    return classified.groupBy("partition", "outcome", "reason").agg(
        F.count(F.lit(1)).alias("n"), F.min("offset").alias("first"), F.max("offset").alias("last"))


def build_receipt(counts: list[dict], run_id: str, app_id: str, batch_id: int, source: dict) -> dict:
    """Fold ``outcome_counts`` rows into the receipt: per partition the offset range [start, end) and
    how every offset in it was decided, plus the quarantine counts by reason."""
    parts: dict[int, dict] = {}
    reasons: dict[str, int] = {}
    for row in counts:
        part = parts.setdefault(row["partition"], {
            "partition": row["partition"], "start_offset": row["first"], "end_offset": row["last"] + 1,
            "received": 0, "admitted": 0, "duplicates": 0, "quarantined": 0})
        part["start_offset"] = min(part["start_offset"], row["first"])
        part["end_offset"] = max(part["end_offset"], row["last"] + 1)
        part["received"] += row["n"]
        part[RECEIPT_COUNT[row["outcome"]]] += row["n"]
        if row["outcome"] == QUARANTINED:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["n"]
    ordered = [parts[p] for p in sorted(parts)]
    total = lambda key: sum(p[key] for p in ordered)  # noqa: E731
    return {
        "run_id": run_id, "app_id": app_id, "batch_id": batch_id, "topic": source["topic"],
        "epoch": source["epoch"], "topic_id": source["topic_id"], "partitions": ordered,
        "received": total("received"), "admitted": total("admitted"), "duplicates": total("duplicates"),
        "quarantined": total("quarantined"), "quarantined_by_reason": reasons,
    }


# outcome -> the rows it writes, and the ``IngestTables`` field and catalog name of their table
OUTCOME_TABLES = {QUARANTINED: (quarantine_rows, "quarantine", "bronze.quarantine"),
                  DUPLICATE: (duplicate_rows, "duplicates", "bronze.duplicate_events"),
                  ADMITTED: (admitted_rows, "admitted", "bronze.admitted_events")}


def keep_payload_of_quarantined(classified: DataFrame) -> DataFrame:
    """Only quarantine rows store the raw bytes; dropping them elsewhere keeps the cached batch small."""
    return classified.withColumn("value", F.when(F.col("outcome") == QUARANTINED, F.col("value")))


# ---- the history a batch is deduplicated against -------------------------------------------------

HISTORY_SCHEMA = "event_id string, payload_sha256 string, event_date date, app_id string, batch_id long"


def history_window(dates: list[date]) -> list[date]:
    """The admitted partitions that can hold a duplicate of events on ``dates``: each date ±1 day."""
    return sorted({d + timedelta(days=k) for d in dates for k in (-1, 0, 1)})


def history_slice(admitted: DataFrame, window: list[date], app_id: str, batch_id: int) -> DataFrame:
    """Admitted events on the ``window`` dates, minus batch (``app_id``, ``batch_id``) if it is a replay."""
    return admitted.where(F.col("event_date").isin(window)).where(
        ~((F.col("app_id") == app_id) & (F.col("batch_id") == batch_id))
    ).select("event_id", "payload_sha256")


# ---- the foreachBatch function --------------------------------------------------------------------

class IngestBatchWriter(query.BatchFunction):
    """Called by Spark once per micro-batch (and again for a replayed one); writes synchronously."""

    def __init__(self, paths: IngestTables, run_id: str, identity: ckpt.CheckpointIdentity,
                 validate: Validator | None = None):
        self.paths, self.run_id, self.app_id = paths, run_id, identity.app_id
        self.checkpoint, self.source = identity.checkpoint, identity.binding
        self.receipts_path = paths.receipts
        self.validate = validate or Validator()

    def write(self, batch: DataFrame, batch_id: int) -> None:
        ckpt.claim_batch(batch.sparkSession, self.checkpoint, batch_id, self.run_id)
        # The batch is read and parsed once: validated rows are cached (without the payload text, which
        # the quarantine renders again from the raw bytes), the history dates come from that cache, and
        # the classified rows are cached in turn for the receipt and the writes.
        with cached(self.validate(batch).drop("payload")) as validated:
            history = self._history(validated, batch_id)
            with cached(keep_payload_of_quarantined(classify(validated, history))) as classified:
                self._write(classified, batch_id)

    def _history(self, validated: DataFrame, batch_id: int) -> DataFrame:
        """Admitted events on the batch's event dates (±1 day), minus this very batch if it is a replay,
        as of the table's version now: pinned, the history does not change under the batch's own writes
        (and Spark keeps the cached classification when the batch appends to the admitted table)."""
        window = history_window([r.d for r in event_dates(validated).collect()])
        spark = validated.sparkSession
        if tables.exists(spark, self.paths.admitted):
            version = delta.latest_version(spark, self.paths.admitted)
            admitted = spark.read.format("delta").option("versionAsOf", version).load(self.paths.admitted)
        else:
            admitted = tables.read_or_empty(spark, self.paths.admitted, HISTORY_SCHEMA)
        return history_slice(admitted, window, self.app_id, batch_id)

    def _write(self, classified: DataFrame, batch_id: int) -> None:
        txn = (self.app_id, batch_id)
        # The receipt's counts come first: that one small aggregate fills the cache the writes read.
        counts = [row.asDict() for row in outcome_counts(classified).collect()]
        outcomes = {row["outcome"] for row in counts}
        clock = datetime.now(timezone.utc)
        rows = with_lineage(classified, self.run_id, self.app_id, batch_id, clock)
        # A table gets a commit only when the batch has rows for it (a replay decides the same, so it
        # skips the same). The three are independent idempotent writes, side by side: the classified
        # rows read a pinned version of the admitted history, so the admitted write leaves their cache be.
        concurrently(classified.sparkSession, *[
            partial(self._append_outcome, shape(rows), field, table, batch_id)
            for outcome, (shape, field, table) in OUTCOME_TABLES.items() if outcome in outcomes])
        receipt = {**build_receipt(counts, self.run_id, self.app_id, batch_id, self.source), "written_at": clock}
        frame = classified.sparkSession.createDataFrame([receipt], RECEIPT_SCHEMA)
        delta.append(frame, self.paths.receipts, "meta.ingest_receipts", self.run_id, txn=txn)
        crash_if_requested("ingest.before_commit", batch_id)

    def _append_outcome(self, frame: DataFrame, field: str, table: str, batch_id: int) -> None:
        delta.append(frame, getattr(self.paths, field), table, self.run_id, txn=(self.app_id, batch_id))
        crash_if_requested(f"ingest.after_{field}", batch_id)


# ---- consumer-group publishing --------------------------------------------------------------------

class CommittedOffsetPublisher(StreamingQueryListener):
    """After each batch, mirror the checkpoint's committed position into a Kafka consumer group.

    It reads ``commits/`` rather than the progress event, so it can never publish ahead of a commit.
    """

    def __init__(self, spark: SparkSession, checkpoint: str, bootstrap: str, group: str, topic: str):
        self.spark, self.checkpoint, self.bootstrap, self.group, self.topic = spark, checkpoint, bootstrap, group, topic

    def publish(self) -> dict[int, int]:
        _, offsets = ckpt.committed_offsets(self.spark, self.checkpoint, self.topic)
        if offsets:
            kafka_admin.publish_group_offsets(self.bootstrap, self.group, self.topic, offsets)
        return offsets

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        self.publish()

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


# ---- running the query ----------------------------------------------------------------------------

def kafka_source(spark: SparkSession, settings: Settings, bootstrap: str) -> DataFrame:
    return (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", settings.kafka.topic)
        .option("startingOffsets", "earliest")
        # A retention gap must stop the stream, not silently skip offsets.
        .option("failOnDataLoss", "true")
        .option("maxOffsetsPerTrigger", settings.kafka.max_offsets_per_trigger)
        .options(**spark_kafka_security())   # SASL/SCRAM on MSK; nothing for the local broker
        .load()
    )


def run_query(spark: SparkSession, settings: Settings, run_id: str, identity: ckpt.CheckpointIdentity,
              bootstrap: str, *, until_caught_up: bool, trigger_seconds: int,
              validate: Validator | None = None) -> None:
    paths = IngestTables.from_root(settings.tables_root)
    writer = IngestBatchWriter(paths, run_id, identity, validate)
    publisher = CommittedOffsetPublisher(spark, identity.checkpoint, bootstrap, settings.kafka.consumer_group,
                                         settings.kafka.topic)
    stream = (kafka_source(spark, settings, bootstrap).writeStream.foreachBatch(writer)
              .option("checkpointLocation", identity.checkpoint).queryName(f"ingest-{run_id}"))
    stream = stream.trigger(availableNow=True) if until_caught_up else stream.trigger(processingTime=f"{trigger_seconds} seconds")
    spark.streams.addListener(publisher)
    try:
        query.run_to_end(spark, stream.start, identity.checkpoint, writer)
    finally:
        spark.streams.removeListener(publisher)
        publish_final(publisher)


def publish_final(publisher: CommittedOffsetPublisher) -> None:
    """The consumer group mirrors the proof for lag tooling; it is not the proof, so a failure only warns."""
    try:
        publisher.publish()
    except LedgerlaneError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def run_totals(spark: SparkSession, receipts_path: str, run_id: str) -> dict:
    receipts = tables.read_or_empty(spark, receipts_path, RECEIPT_SCHEMA).where(F.col("run_id") == run_id)
    row = receipts.agg(F.count(F.lit(1)).alias("batches"), *[F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in
                       ("received", "admitted", "duplicates", "quarantined")]).first()
    return row.asDict()


def retention_gaps(committed: dict[int, int], snapshot: dict) -> list[str]:
    """Partitions whose next offset to read is below the earliest the topic still holds (pure)."""
    earliest = {p["partition"]: p["start_offset"] for p in snapshot["partitions"]}
    return [f"partition {p}: next offset {position}, earliest retained {earliest[p]} "
            f"({earliest[p] - position} records deleted unread)"
            for p, position in sorted(committed.items()) if p in earliest and position < earliest[p]]


def assert_nothing_lost(spark: SparkSession, checkpoint: str, snapshot: dict) -> None:
    """Refuse before Spark does (with a raw trace) when retention deleted records the checkpoint still needs."""
    _, committed = ckpt.committed_offsets(spark, checkpoint, snapshot["topic"])
    gaps = retention_gaps(committed, snapshot)
    if gaps:
        raise StateDrift(
            f"topic {snapshot['topic']} no longer holds records checkpoint {checkpoint} has not read yet: "
            f"{'; '.join(gaps)}. Resuming would skip them and still report success. Nothing was written. "
            "If the loss is accepted, start over explicitly with --new-epoch --reason '...' (docs/ingest.md)")


def assert_basis_is_this_topic(basis: dict, snapshot: dict) -> None:
    """A run's basis names one incarnation of the topic; resuming the run on another cannot complete it."""
    if (basis["topic_id"], basis["cluster_id"]) != (snapshot["topic_id"], snapshot["cluster_id"]):
        raise StateDrift(
            f"run {basis['run_id']} started on topic {basis['topic']} id {basis['topic_id']} (cluster "
            f"{basis['cluster_id']}); the broker now has id {snapshot['topic_id']} (cluster {snapshot['cluster_id']}). "
            "Its basis can no longer be reached. Nothing was written. Start a new run id")


def prior_receipts(spark: SparkSession, receipts_path: str, topic: str, epoch: int) -> Callable[[], str | None]:
    """What ingest already recorded for this topic epoch, in words (for the replaced-checkpoint check)."""
    def describe_prior() -> str | None:
        receipts = tables.read_or_empty(spark, receipts_path, RECEIPT_SCHEMA).where(
            (F.col("topic") == topic) & (F.col("epoch") == epoch))
        row = receipts.agg(F.count(F.lit(1)).alias("n"), F.sum("received").alias("received"),
                           F.concat_ws(", ", F.collect_set("app_id")).alias("apps")).first()
        if not row["n"]:
            return None
        return (f"{row['n']} batches ({row['received']} records) of topic {topic} epoch {epoch} were already "
                f"ingested by app id {row['apps']}")
    return describe_prior


def prepare(spark: SparkSession, settings: Settings, run_id: str, snapshot: dict, *, new_epoch: bool,
            reason: str | None, progress: Callable[[str], None]) -> tuple[dict | None, dict, ckpt.CheckpointIdentity]:
    """Everything that must hold before the query may start: the run's basis (if it has one) names this
    topic, the epoch matches the bus, the checkpoint's identity, no gap. Returns the basis found (None
    for a new run: ``ingest`` records it while the query runs), the epoch and the identity."""
    paths = IngestTables.from_root(settings.tables_root)
    # The run's basis (if it has one) and the topic's current epoch are read side by side.
    existing, current = concurrently(spark, lambda: run_basis.read_basis(spark, paths.basis, run_id),
                                     lambda: epochs.current(spark, paths.epochs, snapshot["topic"]))
    if existing is not None:
        assert_basis_is_this_topic(existing, snapshot)
    planned = epochs.plan(snapshot, run_id, current, new_epoch=new_epoch, reason=reason)
    number = planned.row["epoch"]
    checkpoint = checkpoint_location(settings, number)
    for name in ckpt.remove_orphan_checksums(spark, checkpoint):
        progress(f"removed {name}: the checksum of a file that no longer exists")
    binding = {"topic": snapshot["topic"], "epoch": number, "topic_id": planned.row["topic_id"]}
    found = ckpt.check_identity(spark, checkpoint, apps_path=paths.apps, receipts_path=paths.receipts,
                                stream="ingest", binding=binding,
                                prior_work=prior_receipts(spark, paths.receipts, snapshot["topic"], number))
    ckpt.assert_pending_batch_is_ours(spark, checkpoint, run_id)
    assert_nothing_lost(spark, checkpoint, snapshot)
    # Every check passed: a new epoch and a new checkpoint identity are recorded side by side.
    epoch, identity = concurrently(spark, lambda: epochs.record(spark, paths.epochs, planned),
                                   lambda: ckpt.record_identity(spark, found, paths.apps, run_id))
    return existing, epoch, identity


def record_run_basis(spark: SparkSession, path: str, run_id: str, snapshot: dict,
                     captured_at: datetime | None = None) -> dict:
    """Record the snapshot (read at ``captured_at``) as the run's basis; the basis read back must name
    this topic (a start of the same run on another topic, at the same moment, may have recorded its own)."""
    basis = run_basis.record_basis(spark, path, run_id, snapshot, captured_at)
    assert_basis_is_this_topic(basis, snapshot)
    return basis


def ingest(spark: SparkSession, settings: Settings, run_id: str, *, until_caught_up: bool = True,
           trigger_seconds: int = 5, new_epoch: bool = False, reason: str | None = None,
           progress: Callable[[str], None] = lambda _: None) -> dict:
    """Check the bus and the checkpoint, run the query, prove catch-up.

    Raises StateDrift when the checkpoint or the topic is not the one the receipts vouch for, and
    NotCaughtUp with the proof's numbers when the run did not reach its basis.
    """
    run_id = assert_run_id(run_id)
    paths = IngestTables.from_root(settings.tables_root)
    bootstrap = kafka_bootstrap(settings)
    snapshot = kafka_admin.topic_snapshot(bootstrap, settings.kafka.topic)
    captured_at = datetime.now(timezone.utc)   # the basis's time is when the bus was read, not when it is recorded
    with query.exclusive(topic_folder(settings)):
        # The validator's ~1,000 column expressions (about a second of py4j calls) are built beside the
        # start's reads and checks, which mostly wait on Spark and the Delta log.
        with alongside(spark, Validator) as validator:
            existing, epoch, identity = prepare(spark, settings, run_id, snapshot, new_epoch=new_epoch,
                                                reason=reason, progress=progress)
            validate = validator.result()
        if existing is None:
            progress(f"recording run basis of topic {snapshot['topic']}")
        progress(f"ingesting epoch {epoch['epoch']} (app id {identity.app_id})")
        # A new run's basis is recorded while the query runs: nothing in the query reads it, and the
        # caught-up proof waits for it. A failed query still waits for it (and raises its own error).
        def basis_of_run() -> dict:
            return existing or record_run_basis(spark, paths.basis, run_id, snapshot, captured_at)

        with alongside(spark, basis_of_run) as basis:
            started = time.monotonic()
            run_query(spark, settings, run_id, identity, bootstrap, until_caught_up=until_caught_up,
                      trigger_seconds=trigger_seconds, validate=validate)
            seconds = time.monotonic() - started
            recorded = basis.result()
        committed_batch, committed = ckpt.committed_offsets(spark, identity.checkpoint, snapshot["topic"])
        # The proof is written and the run's receipts are summed side by side (neither reads the other).
        proof, totals = concurrently(
            spark,
            lambda: run_basis.record_caught_up(spark, paths.caught_up, run_id, identity.app_id, recorded,
                                               committed_batch, committed),
            lambda: run_totals(spark, paths.receipts, run_id))
    summary = {"run_id": run_id, "app_id": identity.app_id, "topic": snapshot["topic"], "epoch": epoch["epoch"],
               **totals, "seconds": round(seconds, 2),
               "events_per_s": round(totals["received"] / seconds, 1) if seconds else None,
               "caught_up": proof["caught_up"], "partitions": proof["partitions"]}
    if until_caught_up and not proof["caught_up"]:
        lagging = [f"{p['partition']}: lag {p['lag']}" for p in proof["partitions"] if p["lag"]]
        raise NotCaughtUp(f"run {run_id} did not reach its basis on {snapshot['topic']} ({', '.join(lagging)})")
    return summary


def describe(summary: dict) -> str:
    lines = [f"ingest run {summary['run_id']}: {summary['batches']} batches, {summary['received']} received = "
             f"{summary['admitted']} admitted + {summary['duplicates']} duplicates + {summary['quarantined']} quarantined "
             f"({summary['events_per_s']} events/s)"]
    lines += [f"  partition {p['partition']}: committed {p['committed_offset']} / basis end {p['basis_end']} "
              f"(lag {p['lag']})" for p in summary["partitions"]]
    lines.append("  caught up" if summary["caught_up"] else "  NOT caught up")
    return "\n".join(lines)


def _run(ctx: JobContext, args: dict) -> dict:
    return ingest(ctx.spark, ctx.settings, args["run_id"], until_caught_up=args["until_caught_up"],
                  trigger_seconds=args["trigger_seconds"], new_epoch=args["new_epoch"], reason=args["reason"],
                  progress=ctx.progress)


JOB = Job(
    name="ingest", group="stream", module="streaming.ingest", streaming=True, run=_run, describe=describe,
    summary="Kafka -> admitted / duplicates / quarantine Delta tables, a receipt per batch (exit 9 if not caught up)",
    options=(
        *stream_options("Process everything up to the run basis, prove lag 0 per partition", trigger_default=5),
        Option("--new-epoch", "Start over on the topic as it is now, through a new checkpoint (recorded in "
               "meta.topic_epochs); only after a recreated topic, a lost checkpoint or accepted data loss.",
               is_flag=True),
        Option("--reason", "Why ingest starts a new epoch (required with --new-epoch).", metavar="TEXT"),
    ),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
