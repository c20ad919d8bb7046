"""Replay from the anchors: re-derive a closed run from its recorded offsets and certified versions.

    ledgerlane replay --run-id r-20261122-1 --into /tmp/replay-r1
    spark-submit jobs/submit.py replay --run-id r-20261122-1 --into s3://bucket/replays/r1

What exactly did we process, and can we reproduce it? Each ingest batch of the run is read again from
the bus at exactly the offsets its receipt recorded, through the same batch function, into scratch
tables under ``--into`` (dedup sees the admitted history as it was when the run began, by time travel).
Each event is decided again under the run's policy with the feature versions its decision recorded,
read by time travel. Then admitted rows, decisions and actions are compared, row for row, with the
originals: identical, or the differences are counted (exit 8). Nothing of the original is written.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common import catalog, delta, fs, kafka_admin, tables
from common.bundle_store import open_store
from common.config import Settings
from common.endpoints import kafka_bootstrap
from common.errors import ClosureFailed, ConfigError, IdempotencyConflict, StateDrift
from common.jobspec import RUN_ID, Job, JobContext, Option
from common.run import assert_run_id
from jobs.closure import verify
from products import product
from streaming import checkpoint as ckpt
from streaming import ingest as ingest_stream
from streaming import policy

ADMITTED_COLUMNS = ("event_id", "account_id", "card_id", "merchant_id", "amount_minor", "currency", "event_time",
                    "channel", "country", "topic", "partition", "offset", "payload_sha256", "run_id", "batch_id")
DECISION_COLUMNS = ("decision_id", "event_id", "outcome", "score", "reasons", "policy_version", "features_as_of")
ACTION_COLUMNS = ("action_id", "decision_id", "event_id", "action_type", "reason")


def scratch_settings(settings: Settings, into: str) -> Settings:
    root = into.rstrip("/")
    return settings.model_copy(update={"storage": settings.storage.model_copy(update={
        "tables_root": f"{root}/tables", "checkpoints_root": f"{root}/checkpoints", "evidence_root": f"{root}/evidence"})})


def assert_empty_target(into: str) -> None:
    if "://" not in into and Path(into).exists() and any(Path(into).iterdir()):
        raise ConfigError(f"--into {into} is not empty: a replay writes scratch tables there and never over others")


def run_receipts(spark: SparkSession, settings: Settings, run_id: str) -> list[dict]:
    path = catalog.location(settings.tables_root, "meta.ingest_receipts")
    rows = tables.read_or_empty(spark, path, ingest_stream.RECEIPT_SCHEMA).where(F.col("run_id") == run_id).collect()
    return sorted((r.asDict(recursive=True) for r in rows), key=lambda r: r["batch_id"])


def assert_offsets_still_on_the_bus(settings: Settings, receipts: list[dict]) -> str:
    """The records must still be there, on the same incarnation of the topic."""
    topic = receipts[0]["topic"]
    now = kafka_admin.topic_snapshot(kafka_bootstrap(settings), topic)
    if now["topic_id"] != receipts[0]["topic_id"]:
        raise StateDrift(f"topic {topic} is not the one the run read (topic id {receipts[0]['topic_id']} then, "
                         f"{now['topic_id']} now): its offsets cannot be replayed")
    earliest = {p["partition"]: p["start_offset"] for p in now["partitions"]}
    first = {}
    for receipt in receipts:
        for part in receipt["partitions"]:
            first[part["partition"]] = min(first.get(part["partition"], part["start_offset"]), part["start_offset"])
    lost = [f"partition {p} from {o} (earliest now {earliest.get(p)})" for p, o in first.items() if earliest.get(p, 0) > o]
    if lost:
        raise StateDrift("offsets the run read were deleted by retention, so it cannot be replayed: " + "; ".join(lost))
    return topic


def batch_from_bus(spark: SparkSession, bootstrap: str, receipt: dict) -> DataFrame:
    """Exactly the records of one ingest batch: its recorded offset range per partition."""
    topic = receipt["topic"]
    parts = receipt["partitions"]
    return (spark.read.format("kafka").option("kafka.bootstrap.servers", bootstrap)
            .option("assign", json.dumps({topic: [p["partition"] for p in parts]}))
            .option("startingOffsets", json.dumps({topic: {str(p["partition"]): p["start_offset"] for p in parts}}))
            .option("endingOffsets", json.dumps({topic: {str(p["partition"]): p["end_offset"] for p in parts}}))
            .option("failOnDataLoss", "true").load())


def seed_history(spark: SparkSession, settings: Settings, scratch: Settings, run_id: str) -> int | None:
    """The admitted history as it was before the run's first admitted commit, copied into the scratch table."""
    original = catalog.location(settings.tables_root, "bronze.admitted_events")
    first = min((v for v in delta.commit_versions(spark, original)
                 if delta.run_of(delta.read_commit(spark, original, v)[1]) == run_id), default=None)
    if first is None or first == 0:
        return first
    before = spark.read.format("delta").option("versionAsOf", first - 1).load(original)
    delta.append(before, catalog.location(scratch.tables_root, "bronze.admitted_events"), "bronze.admitted_events",
                 run_id)
    return first - 1


def replay_ingest(spark: SparkSession, settings: Settings, scratch: Settings, run_id: str, receipts: list[dict]) -> None:
    bootstrap = kafka_bootstrap(settings)
    paths = ingest_stream.IngestTables.from_root(scratch.tables_root)
    source = {"topic": receipts[0]["topic"], "epoch": receipts[0]["epoch"], "topic_id": receipts[0]["topic_id"]}
    identity = ckpt.CheckpointIdentity(app_id=f"replay-{uuid.uuid4().hex}", checkpoint=f"{scratch.checkpoints_root}/"
                                       "ingest", binding=source)
    writer = ingest_stream.IngestBatchWriter(paths, run_id, identity)
    for receipt in receipts:
        writer(batch_from_bus(spark, bootstrap, receipt), receipt["batch_id"])


def replay_decisions(spark: SparkSession, settings: Settings, scratch: Settings, run_id: str) -> DataFrame:
    """Each event of the run decided again under the run's policy, with the feature versions it recorded."""
    original = (spark.read.format("delta").load(catalog.location(settings.tables_root, "decision.decisions"))
                .where(F.col("event_run_id") == run_id).withColumn("_versions", F.to_json("feature_versions")))
    # Maps cannot be compared or made distinct in Spark: their JSON text can.
    used = original.select("policy_version", "_versions").distinct().collect()
    if {row.policy_version for row in used} - {settings.decision.policy_version}:
        raise IdempotencyConflict(f"run {run_id} was decided under policy {sorted({r.policy_version for r in used})}; the "
                                  f"configuration now has {settings.decision.policy_version}: replay needs the run's policy")
    events = spark.read.format("delta").load(catalog.location(scratch.tables_root, "bronze.admitted_events")).where(
        F.col("run_id") == run_id)
    features_table, merchants_table = product("account_features").table.name, product("merchant_risk").table.name
    decided = None
    for row in used:
        versions = json.loads(row["_versions"])
        pinned = original.where(F.col("_versions") == row["_versions"])
        batch = events.join(pinned.select("event_id"), on="event_id", how="left_semi")
        features = read_at(spark, settings, features_table, versions[features_table])
        merchants = read_at(spark, settings, merchants_table, versions[merchants_table])
        part = policy.decide(batch, policy.latest_per(features, "account_id"), policy.latest_per(merchants, "merchant_id"),
                             settings.decision)
        decided = part if decided is None else decided.unionByName(part)
    if decided is None:
        return spark.createDataFrame([], original.schema).select(*DECISION_COLUMNS)
    return decided


def read_at(spark: SparkSession, settings: Settings, table: str, version: int) -> DataFrame:
    return spark.read.format("delta").option("versionAsOf", version).load(catalog.location(settings.tables_root, table))


def difference(replayed: DataFrame, original: DataFrame, columns: tuple[str, ...]) -> dict:
    left, right = replayed.select(*columns), original.select(*columns)
    return {"replayed": left.count(), "original": right.count(), "only_in_replay": left.exceptAll(right).count(),
            "only_in_original": right.exceptAll(left).count()}


def replay(spark: SparkSession, settings: Settings, run_id: str, into: str, *, progress=lambda _: None) -> dict:
    run_id = assert_run_id(run_id)
    evidence = verify.load(open_store(settings.evidence_root), run_id)
    if evidence.verdict != "PASS":
        raise ClosureFailed(f"run {run_id} is not closed PASS ({evidence.verdict}): replay proves a closed run")
    assert_empty_target(into)
    receipts = run_receipts(spark, settings, run_id)
    if not receipts:
        raise ClosureFailed(f"run {run_id} has no ingest receipts to replay")
    assert_offsets_still_on_the_bus(settings, receipts)
    scratch = scratch_settings(settings, into)
    progress("seeding the admitted history as it was when the run began")
    seed_history(spark, settings, scratch, run_id)
    progress(f"re-reading {len(receipts)} batches from the bus at their recorded offsets")
    replay_ingest(spark, settings, scratch, run_id, receipts)
    admitted_path = "bronze.admitted_events"
    original = lambda table: spark.read.format("delta").load(catalog.location(settings.tables_root, table))  # noqa: E731
    replayed_admitted = spark.read.format("delta").load(catalog.location(scratch.tables_root, admitted_path)).where(
        F.col("run_id") == run_id)
    progress("deciding again with the certified feature versions the decisions recorded")
    decisions = replay_decisions(spark, settings, scratch, run_id)
    original_decisions = original("decision.decisions").where(F.col("event_run_id") == run_id)
    actions = policy.actions(decisions)
    original_actions = original("decision.actions").join(original_decisions.select("decision_id"), on="decision_id",
                                                         how="left_semi")
    compared = {
        "admitted": difference(replayed_admitted, original(admitted_path).where(F.col("run_id") == run_id),
                               ADMITTED_COLUMNS),
        "decisions": difference(decisions, original_decisions, DECISION_COLUMNS),
        "actions": difference(actions, original_actions, ACTION_COLUMNS),
    }
    identical = all(d["only_in_replay"] == d["only_in_original"] == 0 for d in compared.values())
    summary = {"run_id": run_id, "into": into, "identical": identical, "batches": len(receipts), "compared": compared}
    fs.write_text(spark, f"{into.rstrip('/')}/replay.json", json.dumps(summary, indent=2, sort_keys=True),
                  overwrite=True)
    return summary


def describe(summary: dict) -> str:
    head = (f"replay of run {summary['run_id']} from {summary['batches']} recorded batches: "
            + ("IDENTICAL to the original" if summary["identical"] else "DIFFERS from the original"))
    lines = [head] + [f"  {name:<10} {d['replayed']:>8} replayed, {d['original']:>8} original, "
                      f"{d['only_in_replay']} only in the replay, {d['only_in_original']} only in the original"
                      for name, d in summary["compared"].items()]
    return "\n".join(lines + [f"  scratch tables {summary['into']}"])


def _run(ctx: JobContext, args: dict) -> dict:
    return replay(ctx.spark, ctx.settings, args["run_id"], args["into"], progress=ctx.progress)


JOB = Job(
    name="replay", group="", module="jobs.replay", run=_run, describe=describe,
    exit_code=lambda s: 0 if s["identical"] else ClosureFailed.exit_code,
    summary="Re-derive a closed run from its recorded offsets and certified versions into scratch tables and "
            "prove admitted rows, decisions and actions identical to the originals (exit 8 if not).",
    options=(RUN_ID, Option("--into", "An empty folder (or s3:// prefix) for the scratch tables.", required=True,
                            metavar="DIR")),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
