"""Reading Delta tables that may not exist yet (a fresh home has none)."""

from __future__ import annotations

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

# what loading a path that holds no Delta table raises: no such path, or a folder without a committed log
NOT_A_TABLE = ("PATH_NOT_FOUND", "DELTA_TABLE_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE")


def exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a Delta table with at least one commit, as of now.

    ``DeltaTable.isDeltaTable`` alone is not enough: it answers from the session's cached log, and a log
    it first found empty (a writer in another process creates ``_delta_log`` before its first commit)
    is never refreshed, so a table committed since would stay missing for the rest of the session.
    Loading the path refreshes the log."""
    from delta.tables import DeltaTable

    if DeltaTable.isDeltaTable(spark, path):
        return True
    try:
        spark.read.format("delta").load(path)
    except AnalysisException as error:
        if error.getCondition() in NOT_A_TABLE:
            return False
        raise
    return True


def read_or_empty(spark: SparkSession, path: str, schema: str) -> DataFrame:
    """The table at ``path``, or an empty frame with ``schema`` when nothing was written yet."""
    if exists(spark, path):
        return spark.read.format("delta").load(path)
    return spark.createDataFrame([], schema)
