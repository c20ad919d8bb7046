"""``meta.certifications``: one append-only row per certification of a product's Delta version."""

from __future__ import annotations

import json
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from checks.results import PASS, Verdict
from common import catalog, delta, fs, tables

TABLE = "meta.certifications"
INPUTS_TYPE = "array<struct<name:string,location:string,version:long>>"
SCHEMA = (
    "product string, table_name string, location string, version long, run_id string, status string, "
    "engine string, expectations array<struct<expectation:string,passed:boolean,observed:string>>, "
    f"failures array<string>, inputs {INPUTS_TYPE}, evidence_path string, certified_at timestamp"
)


def row(verdict: Verdict, table: str, location: str, inputs: list[dict], evidence_path: str,
        certified_at: datetime) -> dict:
    # Observations differ in type (counts, sums, column lists), so the table keeps them as JSON text.
    expectations = [{**r, "observed": json.dumps(r["observed"], default=str)} for r in verdict.to_dict()["results"]]
    return {"product": verdict.product, "table_name": table, "location": location, "version": verdict.version,
            "run_id": verdict.run_id, "status": verdict.status, "engine": verdict.engine,
            "expectations": expectations, "failures": verdict.failures,
            "inputs": [{"name": i["name"], "location": i["location"], "version": i["version"]} for i in inputs],
            "evidence_path": evidence_path, "certified_at": certified_at}


def record(spark: SparkSession, tables_root: str, certification: dict) -> None:
    frame = spark.createDataFrame([certification], SCHEMA)
    delta.append(frame, catalog.location(tables_root, TABLE), TABLE, certification["run_id"])


def read(spark: SparkSession, tables_root: str) -> DataFrame:
    return tables.read_or_empty(spark, catalog.location(tables_root, TABLE), SCHEMA)


def confirmed(spark: SparkSession, row, location: str) -> bool:
    """The certify job's result file exists and says the same verdict for the same table version."""
    path = row["evidence_path"] or ""
    if not path or not fs.exists(spark, path):
        return False
    try:
        result = json.loads(fs.read_text(spark, path))
    except ValueError:
        return False
    return (result.get("status"), result.get("version"), result.get("location")) == (row["status"], row["version"],
                                                                                    location)
