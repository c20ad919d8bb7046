"""Delta write helpers: every commit is stamped with its run id, replays are idempotent by txn ids."""

from __future__ import annotations

import json
import re
from contextlib import contextmanager
from typing import Iterator

from pyspark.sql import DataFrame, SparkSession

from common.catalog import spec

USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def commit_metadata(run_id: str, **extra: str) -> str:
    """The JSON stamped into a commit's ``userMetadata``; the run id is always present."""
    return json.dumps({"run_id": run_id, **extra}, sort_keys=True)


@contextmanager
def stamped(spark: SparkSession, run_id: str, **extra: str) -> Iterator[None]:
    """Stamp commits made through SQL/MERGE inside the block (they cannot take write options)."""
    previous = spark.conf.get(USER_METADATA_CONF, None)
    spark.conf.set(USER_METADATA_CONF, commit_metadata(run_id, **extra))
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(USER_METADATA_CONF)
        else:
            spark.conf.set(USER_METADATA_CONF, previous)


def append(
    df: DataFrame,
    path: str,
    table: str,
    run_id: str,
    *,
    txn: tuple[str, int] | None = None,
    mode: str = "append",
    replace_where: str | None = None,
) -> None:
    """One append/overwrite builder: run id in userMetadata, table properties, optional idempotent txn.

    ``replace_where`` (with ``mode="overwrite"``) replaces only the rows matching it, e.g. one run's slice.
    """
    writer = (
        df.write.format("delta")
        .mode(mode)
        .option("userMetadata", commit_metadata(run_id, table=table))
    )
    for key, value in spec(table).table_properties.items():
        writer = writer.option(key, value)
    if spec(table).partition_by:
        writer = writer.partitionBy(*spec(table).partition_by)
    if replace_where is not None:
        writer = writer.option("replaceWhere", replace_where)
    if txn is not None:
        app_id, version = txn
        writer = writer.option("txnAppId", app_id).option("txnVersion", str(version))
    writer.save(path)


def history(spark: SparkSession, path: str) -> DataFrame:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, path).history()


def latest_version(spark: SparkSession, path: str) -> int:
    """The table's newest version, from its newest commit alone (not the whole history)."""
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()["version"])


LOG_FILE = re.compile(r"^(\d{20})\.json$")


def commit_versions(spark: SparkSession, path: str) -> list[int]:
    """Versions whose commit file is still in ``_delta_log`` (log retention deletes old ones), ascending."""
    from common import fs

    return sorted(int(m.group(1)) for name in fs.list_names(spark, f"{path}/_delta_log")
                  if (m := LOG_FILE.match(name)))


def read_commit(spark: SparkSession, path: str, version: int) -> tuple[str, list[dict]]:
    """The raw text of commit ``version`` and its actions, one JSON object per line."""
    from common import fs

    text = fs.read_text(spark, f"{path}/_delta_log/{version:020d}.json")
    return text, [json.loads(line) for line in text.splitlines() if line.strip()]


def commit_info(actions: list[dict]) -> dict:
    return next((action["commitInfo"] for action in actions if "commitInfo" in action), {})


def run_of(actions: list[dict]) -> str | None:
    """The run id stamped in a commit's ``userMetadata`` (None for commits ledgerlane did not make)."""
    meta = commit_info(actions).get("userMetadata")
    try:
        return json.loads(meta).get("run_id") if meta else None
    except (ValueError, AttributeError):
        return None
