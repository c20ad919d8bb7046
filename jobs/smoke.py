"""Smoke pipeline: Delta write + time travel, a Kafka round trip through Spark, a PostgreSQL round trip.

    spark-submit jobs/smoke.py --run-id r-smoke-1
    ledgerlane job smoke --run-id r-smoke-1
"""

from __future__ import annotations

import secrets
import sys
import time
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from common import catalog, delta
from common.config import Settings
from common.endpoints import kafka_bootstrap, postgres_params
from common.jobspec import Job, JobContext, Option
from common.run import assert_run_id, new_run_id
from common.secrets import spark_kafka_security

SMOKE_SCHEMA = StructType([StructField("id", LongType(), False), StructField("note", StringType(), False)])
SMOKE_TOPIC = "ledgerlane.smoke"


def smoke_rows(spark: SparkSession, first: int, count: int) -> DataFrame:
    return spark.createDataFrame([(i, f"row-{i}") for i in range(first, first + count)], SMOKE_SCHEMA)


def delta_time_travel(spark: SparkSession, path: str, run_id: str) -> dict:
    """Write twice, then read version 0 back: what a notebook does with as-of labels."""
    delta.append(smoke_rows(spark, 0, 2), path, "meta.smoke", run_id, mode="overwrite")
    first_version = delta.latest_version(spark, path)
    delta.append(smoke_rows(spark, 2, 1), path, "meta.smoke", run_id)
    then = spark.read.format("delta").option("versionAsOf", first_version).load(path)
    return {"version_read": first_version, "rows_then": then.count(), "rows_now": spark.read.format("delta").load(path).count()}


def kafka_round_trip(spark: SparkSession, bootstrap: str, nonce: str) -> dict:
    """Produce one message with the admin client, read it back through Spark's Kafka source."""
    from common import kafka_admin

    kafka_admin.ensure_topic(bootstrap, SMOKE_TOPIC, partitions=1)
    kafka_admin.produce(bootstrap, SMOKE_TOPIC, [(nonce, f'{{"nonce": "{nonce}"}}')])
    found = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", SMOKE_TOPIC)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .options(**spark_kafka_security())
        .load()
        .where(F.col("key").cast("string") == F.lit(nonce))
        .count()
    )
    return {"topic": SMOKE_TOPIC, "messages_found": found}


def postgres_round_trip(params: dict, nonce: str) -> dict:
    import psycopg

    with psycopg.connect(**params) as conn:
        conn.execute("create temporary table smoke (nonce text not null)")
        conn.execute("insert into smoke (nonce) values (%s)", (nonce,))
        row = conn.execute("select nonce from smoke where nonce = %s", (nonce,)).fetchone()
    return {"round_trip": row is not None and row[0] == nonce}


def run(spark: SparkSession, settings: Settings, *, run_id: str | None = None,
        progress: Callable[[str], None] = lambda _: None) -> dict:
    run_id = assert_run_id(run_id or new_run_id())
    nonce = secrets.token_hex(8)
    started = time.monotonic()
    progress("Delta: two writes, read version 0 back")
    result = {"run_id": run_id, "delta": delta_time_travel(spark, catalog.location(settings.tables_root, "meta.smoke"), run_id)}
    progress("Kafka: produce, consume through Spark")
    result["kafka"] = kafka_round_trip(spark, kafka_bootstrap(settings), nonce)
    progress("PostgreSQL: round trip")
    result["postgres"] = postgres_round_trip(postgres_params(settings), nonce)
    result["ok"] = result["delta"]["rows_then"] == 2 and result["kafka"]["messages_found"] == 1 and result["postgres"]["round_trip"]
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def describe(summary: dict) -> str:
    verdict = "OK" if summary["ok"] else "FAILED"
    return (
        f"smoke {verdict} (run {summary['run_id']}, {summary['seconds']} s)\n"
        f"  delta    version {summary['delta']['version_read']} has {summary['delta']['rows_then']} rows (now {summary['delta']['rows_now']})\n"
        f"  kafka    {summary['kafka']['messages_found']} message read back from {summary['kafka']['topic']}\n"
        f"  postgres round trip {'ok' if summary['postgres']['round_trip'] else 'FAILED'}"
    )


def _run(ctx: JobContext, args: dict) -> dict:
    return run(ctx.spark, ctx.settings, run_id=args["run_id"], progress=ctx.progress)


JOB = Job(
    name="smoke", group="job", module="jobs.smoke", run=_run, describe=describe,
    exit_code=lambda summary: 0 if summary["ok"] else 1,
    summary="Prove Delta (write + time travel), Kafka through Spark and PostgreSQL work here.",
    options=(Option("--run-id", "Run id of the smoke writes (default: a new one).", parse=assert_run_id),),
)


if __name__ == "__main__":
    sys.exit(JOB.main())
