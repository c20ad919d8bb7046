"""What the closure reads, and nothing it decides: Delta logs, checkpoints, the bus as it is now,
receipts, certifications and the database. Logs wherever they suffice; where data must be read (one
decision per admitted event, event ids unique across everything ever admitted), only the run's own
rows and one column, so Delta's file statistics skip the rest.

Every reader here is I/O; ``jobs/closure/proofs.py`` turns these facts into checks, purely.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from checks import certifications
from common import basis as run_basis
from common import catalog, delta, fs, kafka_admin, tables
from common.config import Settings
from common.endpoints import kafka_bootstrap, postgres_params
from common.errors import LedgerlaneError
from human_loop import migrate
from human_loop.connection import connect
from jobs import receipts, status
from streaming import cases as case_stream
from streaming import checkpoint as ckpt
from streaming import decide as decide_stream
from streaming import epochs
from streaming import ingest as ingest_stream

# Commits stamped with the run are looked for back to this long before its basis was captured.
CLOCK_SKEW = timedelta(minutes=10)
# Tables whose Delta logs a run writes (and the closure copies): the ingest, decision and batch lanes.
RUN_TABLES = ("bronze.admitted_events", "bronze.duplicate_events", "bronze.quarantine", "meta.ingest_receipts",
              "meta.run_basis", "meta.caught_up", "meta.topic_epochs", "meta.stream_apps", "decision.decisions",
              "decision.actions", "decision.audit", "decision.action_ledger", "meta.decide_receipts",
              "meta.case_receipts", "silver.transactions_view", "gold.account_features", "gold.merchant_risk",
              "meta.certifications", "meta.job_receipts", "labels.label_events")


@dataclass
class Commit:
    table: str
    path: str
    version: int
    text: str
    operation: str
    rows: int
    txn_app_ids: list[str]


@dataclass
class StreamFacts:
    name: str
    checkpoint: str
    app_id: str | None
    registered: list[str]          # app ids meta.stream_apps knows for this checkpoint location
    offsets: list[int]
    commits: list[int]
    receipt_batches: list[int]     # every batch this app id has a receipt for (any run)
    run_batches: list[int]         # the batches of this run


@dataclass
class Facts:
    run_id: str
    basis: dict | None
    proof: dict | None
    epoch: dict | None
    bus_now: dict | None
    bus_error: str | None
    ingest_receipts: list[dict]
    streams: dict[str, StreamFacts]
    committed: dict[int, int]
    commits: list[Commit]
    rewrites: list[str]
    admitted: dict
    decisions: dict
    actions: dict
    audit: dict
    effects: dict
    products: dict[str, status.ProductStatus]
    certifications: list[dict]
    certify_receipts: list[dict]
    certification_files: dict[str, dict | None]
    migrations: dict | None
    migrations_error: str | None
    verified_through: dict[str, int] = field(default_factory=dict)   # append-only tables: last version read


def loc(settings: Settings, table: str) -> str:
    return catalog.location(settings.tables_root, table)


def rows_of(spark: SparkSession, settings: Settings, table: str, schema: str, run_id: str) -> list[dict]:
    frame = tables.read_or_empty(spark, loc(settings, table), schema).where(F.col("run_id") == run_id)
    return [row.asDict(recursive=True) for row in frame.collect()]


# ---- the bus and the ingest checkpoint --------------------------------------------------------------

def bus_now(settings: Settings, topic: str) -> tuple[dict | None, str | None]:
    """The topic as the broker describes it now; when it cannot be reached, why (the proof then fails)."""
    try:
        return kafka_admin.topic_snapshot(kafka_bootstrap(settings), topic), None
    except LedgerlaneError as exc:
        return None, str(exc)


def stream_facts(spark: SparkSession, settings: Settings, name: str, checkpoint: str, receipts_table: str,
                 run_id: str) -> StreamFacts:
    identity_path = f"{checkpoint}/{ckpt.IDENTITY_FILE}"
    app_id = (ckpt.CheckpointIdentity.from_json(fs.read_text(spark, identity_path)).app_id
              if fs.exists(spark, identity_path) else None)
    apps = tables.read_or_empty(spark, loc(settings, ckpt.APPS_TABLE), ckpt.APPS_SCHEMA)
    registered = sorted({r.app_id for r in apps.where(F.col("checkpoint") == checkpoint).collect()})
    receipts_frame = tables.read_or_empty(spark, loc(settings, receipts_table), "run_id string, app_id string, "
                                                                                "batch_id long")
    batches = receipts_frame.where(F.col("app_id").isin(registered or ["-"])).select("run_id", "batch_id").collect()
    return StreamFacts(name, checkpoint, app_id, registered, ckpt.batch_ids(spark, checkpoint, "offsets"),
                       ckpt.batch_ids(spark, checkpoint, "commits"), sorted({r.batch_id for r in batches}),
                       sorted({r.batch_id for r in batches if r.run_id == run_id}))


# ---- Delta logs ----------------------------------------------------------------------------------------

def run_commits(spark: SparkSession, settings: Settings, run_id: str, since: datetime) -> list[Commit]:
    """Every commit stamped with ``run_id`` in the tables a run writes, newest log entries only."""
    floor_ms = int((since - CLOCK_SKEW).timestamp() * 1000)
    found = []
    for table in RUN_TABLES:
        path = loc(settings, table)
        if not tables.exists(spark, path):
            continue
        for version in reversed(delta.commit_versions(spark, path)):
            text, actions = delta.read_commit(spark, path, version)
            info = delta.commit_info(actions)
            if info.get("timestamp", 0) < floor_ms:
                break
            if delta.run_of(actions) == run_id:
                metrics = info.get("operationMetrics") or {}
                found.append(Commit(table, path, version, text, info.get("operation", "?"),
                                    int(metrics.get("numOutputRows", 0) or 0),
                                    sorted({a["txn"]["appId"] for a in actions if "txn" in a})))
    return sorted(found, key=lambda c: (c.table, c.version))


REWRITING_OPERATIONS = {"DELETE", "UPDATE", "MERGE", "RESTORE", "TRUNCATE", "REPLACE TABLE", "CREATE OR REPLACE TABLE",
                        "SET TBLPROPERTIES", "UNSET TBLPROPERTIES", "ALTER TABLE"}


WATERMARKS = "meta.history_verified"
WATERMARK_SCHEMA = "table_name string, version long, run_id string, verified_at timestamp"


def watermarks(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """Per append-only table, the last version a PASS closure read free of rewrites (read no further back)."""
    rows = (tables.read_or_empty(spark, loc(settings, WATERMARKS), WATERMARK_SCHEMA)
            .groupBy("table_name").agg(F.max("version").alias("version")).collect())
    return {r.table_name: r.version for r in rows}


def history_rewrites(spark: SparkSession, settings: Settings,
                     since: dict[str, int] | None = None) -> tuple[list[str], dict[str, int]]:
    """Append-only tables whose log shows a rewrite: a removed data file, or an operation that can
    rewrite (RESTORE, DELETE, UPDATE, switching table properties). Delta allows all of these once
    ``delta.appendOnly`` is switched off, so only the log can tell. Only commits after ``since`` (what
    earlier PASS closures verified) are read, so the cost follows the new commits, not the history.
    Returns the rewrites found and, per table, the last version read."""
    found, read_through = [], {}
    for name, spec in sorted(catalog.TABLES.items()):
        path = loc(settings, name)
        if not spec.append_only or not tables.exists(spark, path):
            continue
        start = (since or {}).get(name, -1)
        for version in (v for v in delta.commit_versions(spark, path) if v > start):
            read_through[name] = version
            _, actions = delta.read_commit(spark, path, version)
            operation = delta.commit_info(actions).get("operation", "")
            removed = sum(1 for a in actions if "remove" in a and a["remove"].get("dataChange", True))
            if operation.upper() in REWRITING_OPERATIONS or removed:
                found.append(f"{name} version {version}: {operation or 'commit'}"
                             + (f" removed {removed} data files" if removed else ""))
    return found, read_through


def record_watermarks(spark: SparkSession, settings: Settings, run_id: str, verified: dict[str, int]) -> None:
    """After a PASS: the append-only history up to these versions was read and found unrewritten."""
    from datetime import datetime as clock

    rows = [(table, version, run_id, clock.now(timezone.utc)) for table, version in sorted(verified.items())]
    if rows:
        delta.append(spark.createDataFrame(rows, WATERMARK_SCHEMA), loc(settings, WATERMARKS), WATERMARKS, run_id)


# ---- the run's rows ----------------------------------------------------------------------------------

def admitted_facts(spark: SparkSession, settings: Settings, run_id: str) -> tuple[dict, DataFrame]:
    admitted = tables.read_or_empty(spark, loc(settings, "bronze.admitted_events"), "event_id string, run_id string")
    mine = admitted.where(F.col("run_id") == run_id).select("event_id")
    row = mine.agg(F.count(F.lit(1)).alias("n"), F.count_distinct("event_id").alias("distinct"),
                   F.min("event_id").alias("low"), F.max("event_id").alias("high")).first()
    conflicting = 0
    if row["n"]:
        # One column, and the run's id range only: file statistics skip everything else.
        others = admitted.where((F.col("run_id") != run_id) & F.col("event_id").between(row["low"], row["high"]))
        conflicting = mine.join(others.select("event_id"), on="event_id", how="left_semi").count()
    return {"rows": row["n"], "distinct": row["distinct"], "also_admitted_by_other_runs": conflicting}, mine


def decision_facts(spark: SparkSession, settings: Settings, run_id: str, admitted_ids: DataFrame) -> tuple[dict, DataFrame]:
    schema = "decision_id string, event_id string, event_run_id string, outcome string, reasons array<string>"
    decisions = tables.read_or_empty(spark, loc(settings, "decision.decisions"), schema).where(
        F.col("event_run_id") == run_id)
    per_event = decisions.groupBy("event_id").agg(F.count(F.lit(1)).alias("n"))
    events = per_event.agg(F.count(F.lit(1)).alias("events"),
                           F.count(F.when(F.col("n") > 1, True)).alias("twice")).first()
    missing = admitted_ids.join(decisions.select("event_id"), on="event_id", how="left_anti")
    by_outcome = {r.outcome: r["count"] for r in decisions.groupBy("outcome").count().collect()}
    by_reason = {r.reason: r["count"] for r in decisions.select(F.explode("reasons").alias("reason"))
                 .groupBy("reason").count().collect()}
    gaps = missing_with_sample(missing, "event_id")
    facts = {"rows": sum(by_outcome.values()), "events": events["events"], "decided_twice": events["twice"],
             "missing": gaps[0], "missing_sample": gaps[1], "by_outcome": by_outcome, "by_reason": by_reason}
    return facts, decisions.select("decision_id")


def missing_with_sample(missing: DataFrame, key: str, sample: int = 3) -> tuple[int, list[str]]:
    """How many rows an anti-join left, and the first few keys: one job when nothing is missing."""
    first = [r[key] for r in missing.select(key).limit(sample).collect()]
    return (missing.count() if len(first) == sample else len(first)), sorted(first)


def action_facts(spark: SparkSession, settings: Settings, decision_ids: DataFrame) -> tuple[dict, DataFrame]:
    """The run's actions (those of its decisions): counts and ids, and the frame the later checks join."""
    schema = "action_id string, decision_id string, action_type string"
    frame = tables.read_or_empty(spark, loc(settings, "decision.actions"), schema).join(
        decision_ids, on="decision_id", how="left_semi").select("action_id", "action_type")
    actions = frame.collect()
    return ({"by_type": _count(a.action_type for a in actions),
             "ids": {kind: sorted(a.action_id for a in actions if a.action_type == kind)
                     for kind in ("open_case", "block_card")}}, frame)


def audit_facts(spark: SparkSession, settings: Settings, decision_ids: DataFrame, actions: DataFrame) -> dict:
    """Decisions and actions of the run with no audit record: anti-joins in Spark, so only gaps reach the driver."""
    audit = tables.read_or_empty(spark, loc(settings, "decision.audit"), "kind string, subject_id string")
    audited = lambda kind: audit.where(F.col("kind") == kind).select(F.col("subject_id"))  # noqa: E731
    decisions = missing_with_sample(decision_ids.join(audited("decision"), decision_ids["decision_id"] ==
                                                      F.col("subject_id"), "left_anti"), "decision_id", 5)
    acted = missing_with_sample(actions.join(audited("action"), actions["action_id"] == F.col("subject_id"),
                                             "left_anti"), "action_id", 5)
    return {"decisions_without_audit": decisions[1], "decisions_missing": decisions[0],
            "actions_without_audit": acted[1], "actions_missing": acted[0]}


def effect_facts(spark: SparkSession, settings: Settings, actions: dict, frame: DataFrame) -> dict:
    """Cases and card controls in PostgreSQL, and the action ledger, for the run's actions."""
    ledger = tables.read_or_empty(spark, loc(settings, "decision.action_ledger"), "action_id string, action_type string")
    in_ledger = {r.action_id: r["n"] for r in ledger.join(frame.select("action_id"), on="action_id", how="left_semi")
                 .groupBy("action_id").agg(F.count(F.lit(1)).alias("n")).collect()}
    try:
        with connect(postgres_params(settings), application_name="ledgerlane-closure") as conn:
            cases = dict(conn.execute(
                "select action_id, count(*) from human_loop.cases where action_id = any(%s) group by action_id",
                (actions["ids"]["open_case"],)).fetchall())
            controls = dict(conn.execute(
                "select action_id, count(*) from human_loop.card_controls where action_id = any(%s) "
                "group by action_id", (actions["ids"]["block_card"],)).fetchall())
        error = None
    except LedgerlaneError as exc:
        cases, controls, error = {}, {}, str(exc)
    return {"cases": cases, "controls": controls, "ledger": in_ledger, "error": error}


def _count(values) -> dict:
    counts: dict = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


# ---- certifications, migrations ----------------------------------------------------------------------------

def certification_facts(spark: SparkSession, settings: Settings, run_id: str) -> tuple[list, list, dict]:
    rows = [r.asDict(recursive=True) for r in certifications.read(spark, settings.tables_root)
            .where(F.col("run_id") == run_id).collect()]
    certify = [r for r in receipts.for_run(spark, settings.tables_root, run_id) if r["step"] == receipts.CERTIFY]
    files = {}
    for row in rows:
        path = row["evidence_path"] or ""
        files[path] = json.loads(fs.read_text(spark, path)) if path and fs.exists(spark, path) else None
    return rows, certify, files


def migration_facts(settings: Settings) -> tuple[dict | None, str | None]:
    try:
        return migrate.status(postgres_params(settings)), None
    except LedgerlaneError as exc:
        return None, str(exc)


# ---- all of it ---------------------------------------------------------------------------------------------

def gather(spark: SparkSession, settings: Settings, run_id: str) -> Facts:
    basis = run_basis.read_basis(spark, loc(settings, "meta.run_basis"), run_id)
    topic = basis["topic"] if basis else settings.kafka.topic
    proofs = rows_of(spark, settings, "meta.caught_up", run_basis.CAUGHT_UP_SCHEMA, run_id)
    ingest_receipts = rows_of(spark, settings, "meta.ingest_receipts", ingest_stream.RECEIPT_SCHEMA, run_id)
    epoch_numbers = sorted({r["epoch"] for r in ingest_receipts if r.get("epoch") is not None})
    epoch = epochs.current(spark, loc(settings, epochs.TABLE), topic) if basis else None
    if epoch_numbers and epoch and epoch["epoch"] != epoch_numbers[-1]:
        epoch = {**epoch, "superseded_by": epoch["epoch"], "epoch": epoch_numbers[-1]}
    checkpoint = ingest_stream.checkpoint_location(settings, epoch_numbers[-1] if epoch_numbers else 1)
    streams = {"ingest": stream_facts(spark, settings, "ingest", checkpoint, "meta.ingest_receipts", run_id),
               "decide": stream_facts(spark, settings, "decide", decide_stream.checkpoint_location(settings),
                                      "meta.decide_receipts", run_id),
               "cases": stream_facts(spark, settings, "cases", case_stream.checkpoint_location(settings),
                                     "meta.case_receipts", run_id)}
    _, committed = ckpt.committed_offsets(spark, checkpoint, topic)
    now, error = bus_now(settings, topic)
    since = basis["captured_at"].replace(tzinfo=timezone.utc) if basis else datetime.now(timezone.utc)
    admitted, admitted_ids = admitted_facts(spark, settings, run_id)
    decisions, decision_ids = decision_facts(spark, settings, run_id, admitted_ids)
    actions, action_frame = action_facts(spark, settings, decision_ids)
    certs, certify, files = certification_facts(spark, settings, run_id)
    migrations, migrations_error = migration_facts(settings)
    rewrites, verified = history_rewrites(spark, settings, watermarks(spark, settings))
    return Facts(
        run_id=run_id, basis=basis, proof=proofs[-1] if proofs else None, epoch=epoch, bus_now=now, bus_error=error,
        ingest_receipts=ingest_receipts, streams=streams, committed=committed,
        commits=run_commits(spark, settings, run_id, since), rewrites=rewrites,
        admitted=admitted, decisions=decisions, actions=actions,
        audit=audit_facts(spark, settings, decision_ids, action_frame),
        effects=effect_facts(spark, settings, actions, action_frame),
        products=status.run_statuses(spark, settings.tables_root, run_id), certifications=certs,
        certify_receipts=certify, certification_files=files, migrations=migrations, migrations_error=migrations_error,
        verified_through=verified,
    )
