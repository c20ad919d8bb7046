"""The one SparkSession builder. Local mode resolves connector jars into a cache ledgerlane owns;
the EMR profile uses what the emr-spark-8.1.0 runtime ships.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from common.config import Settings
from common.edge import is_verbose
from common.jars import connector_jars
from common.java import assert_java

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
        # The JVM never compiles a method over 8,000 bytes of bytecode; whole-stage code for ingest
        # validation is larger, and ran interpreted. At this limit Spark generates split methods instead.
        "spark.sql.codegen.hugeMethodLimit": "8000",
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
        "spark.driver.extraJavaOptions": " ".join([f"-Dderby.system.home={warehouse}", *quiet_log_options()]),
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
    return spark


@contextmanager
def cached(frame: DataFrame) -> Iterator[DataFrame]:
    """``frame`` persisted for the block (memory, spilling to disk), released however the block ends."""
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield frame
    finally:
        frame.unpersist()
