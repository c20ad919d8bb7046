"""Export label events from PostgreSQL to the append-only Delta table ``labels.label_events``.

    spark-submit jobs/export_labels.py --run-id r-20250101T000000Z-abc123
    ledgerlane job export-labels --run-id r-20250101T000000Z-abc123

Fail closed: a label event whose observed_at breaks the bounds (stored before migration V005 made the
database refuse it) is never copied; the run refuses, naming the ids, and commits nothing.

Incremental: the watermark is the highest ``label_event_id`` already in Delta (ids become visible in
commit order, see migration V002), so each run copies only what is new. Idempotent: the append
carries ``txnAppId`` = export-labels-<database instance> and ``txnVersion`` = the highest id it
copies, so a repeated or concurrent run of the same batch commits nothing. A Delta table filled
from another database instance (ids restarted) is refused instead of silently skipping rows.
"""

from __future__ import annotations

import sys
from typing import Any

import psycopg
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

from common import catalog, delta
from common.config import Settings
from common.jobspec import RUN_ID, Job, JobContext, Option, int_between
from human_loop import labels as label_repo
from human_loop.connection import connect
from human_loop.heartbeats import heartbeat
from common.endpoints import postgres_params
from common.faults import crash_if_requested
from common.errors import IdempotencyConflict, StateDrift
from common.run import assert_run_id

TABLE = "labels.label_events"
WORKER = "export-labels"
DEFAULT_MAX_ROWS = 1_000_000
SHOWN = 20
SCHEMA = StructType([
    StructField("label_event_id", LongType(), False),
    StructField("idempotency_key", StringType(), False),
    StructField("account_id", StringType(), False),
    StructField("event_id", StringType(), True),
    StructField("label", StringType(), False),
    StructField("source", StringType(), False),
    StructField("actor", StringType(), False),
    StructField("observed_at", TimestampType(), False),
    StructField("recorded_at", TimestampType(), False),
    StructField("corrects_label_event_id", LongType(), True),
    StructField("note", StringType(), False),
    StructField("source_instance", StringType(), False),
    StructField("export_run_id", StringType(), False),
])


def source_instance(conn) -> str:
    return str(conn.execute("select instance_id from human_loop.instance").fetchone()[0])


def to_frame(spark: SparkSession, rows: list[dict[str, Any]], instance: str, run_id: str) -> DataFrame:
    """Database rows as the Delta table's rows, in the table's column order."""
    extra = {"source_instance": instance, "export_run_id": run_id}
    return spark.createDataFrame([tuple({**row, **extra}[f.name] for f in SCHEMA.fields) for row in rows], SCHEMA)


def watermark(spark: SparkSession, path: str, instance: str) -> int:
    """Highest exported id (0 for a new table); refuses a table filled from another database instance."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return 0
    seen = spark.read.format("delta").load(path).groupBy("source_instance").agg(F.max("label_event_id").alias("high")).collect()
    others = sorted(row["source_instance"] for row in seen if row["source_instance"] != instance)
    if others:
        raise IdempotencyConflict(
            f"{TABLE} at {path} holds label events of database instance(s) {others}, but this database is {instance}: "
            "its ids restarted, so the watermark would skip rows. Export into a new table location."
        )
    return int(seen[0]["high"]) if seen else 0


def assert_exportable(conn: psycopg.Connection, after_id: int, limit: int) -> None:
    """StateDrift naming the events of this batch whose observed_at Delta readers cannot be trusted with."""
    bad = label_repo.out_of_bounds_since(conn, after_id, limit, SHOWN + 1)
    if not bad:
        return
    listed = ", ".join(f"#{event_id} ({observed} UTC)" for event_id, observed in bad[:SHOWN])
    more = ", and more" if len(bad) > SHOWN else ""
    raise StateDrift(
        f"refusing to export label events with observed_at outside {label_repo.OBSERVED_FLOOR:%Y-%m-%dT%H:%M:%SZ} "
        f"to recorded_at + 5 minutes: {listed}{more}. Nothing was copied into {TABLE}. Such rows predate "
        "migration V005, which makes the database refuse them; they stay in PostgreSQL, which is append-only, and "
        "stop the export until they are dealt with (see docs/human_loop.md, Export to Delta)."
    )


def export(spark: SparkSession, settings: Settings, run_id: str, *, max_rows: int = DEFAULT_MAX_ROWS) -> dict[str, Any]:
    """Copy the label events past the watermark (at most ``max_rows``), then beat the heartbeat."""
    run_id = assert_run_id(run_id)
    path = catalog.location(settings.tables_root, TABLE)
    params = postgres_params(settings)
    with connect(params, application_name="ledgerlane-export-labels") as conn:
        # One snapshot for the check and the copy, so the copy reads exactly the rows the check saw.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        instance = source_instance(conn)
        before = watermark(spark, path, instance)
        assert_exportable(conn, before, max_rows)
        rows = label_repo.since(conn, before, max_rows)
    after = rows[-1]["label_event_id"] if rows else before
    if rows:
        delta.append(to_frame(spark, rows, instance, run_id), path, TABLE, run_id, txn=(f"{WORKER}-{instance}", after))
        crash_if_requested("export.before_heartbeat", 0)
    with connect(params, application_name="ledgerlane-export-labels") as conn:
        heartbeat(conn, WORKER, run_id)
    return {"run_id": run_id, "table": TABLE, "path": path, "source_instance": instance, "exported": len(rows),
            "watermark_before": before, "watermark_after": after, "delta_version": _version(spark, path)}


def _version(spark: SparkSession, path: str) -> int | None:
    from delta.tables import DeltaTable

    return delta.latest_version(spark, path) if DeltaTable.isDeltaTable(spark, path) else None


def describe(summary: dict[str, Any]) -> str:
    return (
        f"export-labels run {summary['run_id']}: {summary['exported']} label events copied "
        f"(ids {summary['watermark_before']}..{summary['watermark_after']}] into {summary['table']} "
        f"version {summary['delta_version']} at {summary['path']}"
    )


def _run(ctx: JobContext, args: dict) -> dict:
    return export(ctx.spark, ctx.settings, args["run_id"], max_rows=args["max_rows"])


JOB = Job(
    name="export-labels", group="job", module="jobs.export_labels", run=_run, describe=describe,
    summary="Copy new label events from PostgreSQL into the Delta table labels.label_events.",
    options=(RUN_ID, Option("--max-rows", "Copy at most this many label events; the next run continues from the "
                            "watermark.", parse=int_between(1, 10_000_000), default=DEFAULT_MAX_ROWS)),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
