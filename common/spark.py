"""The one SparkSession builder. Local mode resolves connector jars into a cache ledgerlane owns;
the EMR profile uses what the emr-spark-8.1.0 runtime ships.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from pyspark import StorageLevel
from pyspark.util import inheritable_thread_target
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.config import Settings
from common.edge import is_verbose
from common.jars import connector_jars
from common.java import assert_java

HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"
CODEGEN_CACHE = "spark.sql.codegen.cache.maxEntries"   # a static conf: it must be set before the session starts
T = TypeVar("T")


def base_conf(settings: Settings) -> dict[str, str]:
    """Settings every profile shares: Delta enabled, UTC, small defaults for tiny local data."""
    return {
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark.shuffle_partitions),
        "spark.ui.enabled": str(settings.spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.streaming.stopActiveRunOnRestart": "true",
        # A JVM started without -XX:-DontCompileHugeMethods never compiles a method over 8,000 bytes of
        # bytecode; whole-stage code for ingest validation is larger, and would run interpreted. At this
        # limit Spark runs such a plan without whole-stage code instead. ``build_session`` lifts the
        # limit when the JVM does compile huge methods (the local profile starts it so).
        HUGE_METHOD_LIMIT: "8000",
        # Generated classes are cached by their code; Spark's default keeps 100. One decide batch alone
        # generates ~130 (its writes, the gate, Delta's own log reads), so at 100 every batch evicted the
        # classes the next one needed and compiled them all again (~0.7 s of Janino per 100k batch).
        CODEGEN_CACHE: "2000",
    }


def local_conf(settings: Settings) -> dict[str, str]:
    import pyspark

    jars = connector_jars(Path(settings.cache), pyspark.__version__, Path(pyspark.__file__).parent / "jars")
    warehouse = Path(settings.home) / "warehouse"
    return {
        # Delta replays a table's log to learn its txn versions on every idempotent write; its default
        # of 50 partitions for that replay is pure overhead on local tables (one partition: ~20% faster).
        "spark.databricks.delta.snapshotPartitions": "1",
        # Ingest caches each batch twice (validated, then classified rows). Building compressed column
        # batches cost more than memory is worth on one machine: uncompressed, a 100k batch runs ~8% faster.
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        "spark.master": settings.spark.master,
        "spark.driver.memory": settings.spark.driver_memory,
        "spark.jars": ",".join(str(jar) for jar in jars),
        "spark.sql.warehouse.dir": str(warehouse),
        # Let the JIT compile huge methods, so ingest validation keeps whole-stage code (one fused
        # pass over each record instead of six projections that copy it): about 20% less CPU.
        "spark.driver.extraJavaOptions": " ".join([f"-Dderby.system.home={warehouse}", "-XX:-DontCompileHugeMethods",
                                                   *quiet_log_options()]),
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
    }


QUIET_LOG_CONFIG = Path(__file__).with_name("log4j2-quiet.properties")


def quiet_log_options() -> list[str]:
    """JVM options for a quiet console unless the user asked for ``--verbose`` (``common.edge``)."""
    return [] if is_verbose() else [f"-Dlog4j2.configurationFile={QUIET_LOG_CONFIG}"]


def build_session(settings: Settings, app_name: str, extra_conf: dict[str, str] | None = None) -> SparkSession:
    """Create (or join) the session for ``settings.spark.profile``; the only place that calls getOrCreate."""
    conf = base_conf(settings)
    if settings.spark.profile == "local":
        assert_java()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        conf.update(local_conf(settings))
    conf.update(extra_conf or {})
    builder = SparkSession.builder.appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    if compiles_huge_methods(spark):
        spark.conf.set(HUGE_METHOD_LIMIT, "65535")   # Spark's own default
    return spark


def compiles_huge_methods(spark: SparkSession) -> bool:
    """Whether the driver JVM runs with -XX:-DontCompileHugeMethods (however it was launched)."""
    diagnostics = spark._jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        spark._jvm.com.sun.management.HotSpotDiagnosticMXBean._java_lang_class)
    return diagnostics.getVMOption("DontCompileHugeMethods").getValue() == "false"


@contextmanager
def cached(frame: DataFrame) -> Iterator[DataFrame]:
    """``frame`` persisted for the block (memory, spilling to disk), released however the block ends."""
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield frame
    finally:
        frame.unpersist()


def with_batch_values(frame: DataFrame, schema: str, values: tuple) -> DataFrame:
    """``frame`` with one more column per field of ``schema``, every row holding ``values``.

    For values that change every batch (a batch id, the batch's clock): Spark writes a long or timestamp
    literal into the Java code it generates, so ``F.lit(batch_id)`` or ``F.current_timestamp()`` makes each
    batch compile its write stages again (two Janino compiles per Delta write, measured), and only string
    and map literals are passed by reference. Here the values arrive as data, one broadcast row joined to
    every row, and the generated code is the same for every batch.
    """
    one_row = frame.sparkSession.createDataFrame([values], schema)
    return frame.crossJoin(F.broadcast(one_row))


def concurrently(spark: SparkSession, *actions: Callable[[], T]) -> list[T]:
    """Run Spark actions side by side from threads that inherit the caller's job group and local
    properties (so stopping a stream still cancels them); wait for every one, then return their
    results in order or raise the first failure. For independent writes whose fixed costs (Delta log
    reads, commit round trips) would otherwise add up one after another."""
    with ThreadPoolExecutor(max_workers=max(1, len(actions)), thread_name_prefix="ledgerlane-concurrent") as pool:
        futures = [pool.submit(inheritable_thread_target(spark)(action)) for action in actions]
    # Leaving the block waited for every action; only now is a failure raised.
    return [future.result() for future in futures]


@contextmanager
def alongside(spark: SparkSession, action: Callable[[], T]) -> Iterator[Future]:
    """Run a Spark action in a thread (inheriting the caller's job group and local properties, as
    ``concurrently`` does) while the block runs; the block gets its future, whose ``result()`` waits for
    it and raises its failure. Leaving the block, normally or by an exception, waits for the action, so
    it never outlives its caller. For work nothing in the block needs until it asks (a write, or
    building expressions while the block waits on Spark)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledgerlane-alongside") as pool:
        yield pool.submit(inheritable_thread_target(spark)(action))
