"""Reading Delta tables that may not exist yet (a fresh home has none)."""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession


def exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def read_or_empty(spark: SparkSession, path: str, schema: str) -> DataFrame:
    """The table at ``path``, or an empty frame with ``schema`` when nothing was written yet."""
    if exists(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], schema)
