"""``meta.job_receipts``: one append-only row per attempt of a batch job step (build or certify).

A receipt names its inputs and outputs with their Delta versions, counts, the run and attempt, the
code version and config digest, the checker's verdict and why, and how long it took.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common import catalog, delta, tables

TABLE = "meta.job_receipts"
BUILD, CERTIFY = "build", "certify"
BUILT, ERROR = "BUILT", "ERROR"
SCHEMA = (
    "run_id string, product string, step string, attempt int, status string, cutoff timestamp, "
    "inputs array<struct<name:string,location:string,version:long>>, "
    "outputs array<struct<name:string,location:string,version:long,rows:long,files:long>>, "
    "checker string, checker_result string, reasons array<string>, code_version string, config_digest string, "
    "started_at timestamp, finished_at timestamp, seconds double"
)

# Top-level columns: nested struct fields are separated by "," without a space.
_COLUMNS = tuple(part.split(" ")[0] for part in SCHEMA.split(", "))


def for_run(spark: SparkSession, tables_root: str, run_id: str) -> list[dict]:
    """Every receipt of the run, oldest attempt first (a run has few, so they are collected)."""
    frame = tables.read_or_empty(spark, catalog.location(tables_root, TABLE), SCHEMA).where(F.col("run_id") == run_id)
    rows = [row.asDict(recursive=True) for row in frame.collect()]
    return sorted(rows, key=lambda r: (r["product"], r["step"], r["attempt"]))


def latest(receipts: list[dict], product: str, step: str) -> dict | None:
    mine = [r for r in receipts if r["product"] == product and r["step"] == step]
    return max(mine, key=lambda r: r["attempt"]) if mine else None


def next_attempt(receipts: list[dict], product: str, step: str) -> int:
    previous = latest(receipts, product, step)
    return previous["attempt"] + 1 if previous else 1


def as_utc(moment: datetime) -> datetime:
    """Spark hands timestamps back naive in the local zone; everything here compares aware UTC."""
    return moment.astimezone(timezone.utc)


def run_cutoff(receipts: list[dict]) -> datetime | None:
    """The cut-off the run already used (every product of a run shares one)."""
    cutoffs = sorted({as_utc(r["cutoff"]) for r in receipts if r["cutoff"] is not None})
    return cutoffs[0] if cutoffs else None


def as_read(receipt: dict) -> dict:
    """A receipt just recorded, as ``for_run`` would read it back: Spark returns timestamps naive, in local time.

    Lets a caller that holds the receipts it wrote skip reading the table again and see exactly the same values.
    """
    def naive(value):
        return value.astimezone().replace(tzinfo=None) if isinstance(value, datetime) and value.tzinfo else value

    return {name: naive(receipt.get(name)) for name in _COLUMNS}


def record(spark: SparkSession, tables_root: str, receipt: dict) -> dict:
    row = {**receipt, "seconds": round((receipt["finished_at"] - receipt["started_at"]).total_seconds(), 3)}
    delta.append(spark.createDataFrame([row], SCHEMA), catalog.location(tables_root, TABLE), TABLE, receipt["run_id"])
    return row
