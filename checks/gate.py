"""The read gate (invariant 5, "no PASS, no read"): the only way anything reads a data product.

A product table is read at its newest Delta version certified PASS, even when a newer version exists;
a version that was ever certified FAIL never counts. No such version raises ``UncertifiedProductError``.
The caller names the product's table (``products.product(name).table.name``) and the tables root.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from checks import certifications
from checks.results import FAIL, PASS
from common import catalog
from common.errors import UncertifiedProductError


@dataclass(frozen=True)
class CertifiedProduct:
    table: str
    location: str
    version: int
    frame: DataFrame


def newest_pass(verdicts: list[tuple[int, str]]) -> int | None:
    """The newest version with a PASS and no FAIL (conflicting verdicts fail closed)."""
    failed = {version for version, status in verdicts if status == FAIL}
    passed = {version for version, status in verdicts if status == PASS} - failed
    return max(passed) if passed else None


def newest_confirmed_pass(spark: SparkSession, rows: list, location: str) -> tuple[int | None, list[tuple[int, str]]]:
    """``newest_pass`` over the certification rows of one table, counting a PASS only when its certify
    result file says the same (a row appended by hand is not a proof). PASS rows are confirmed newest
    first and only until one holds: a long history costs one file read, not one per certification.
    Returns the version and the verdicts that counted (for the error when there is none)."""
    unconfirmed: set[int] = set()
    while True:
        verdicts = [(r["version"], r["status"]) for r in rows
                    if r["status"] != PASS or r["version"] not in unconfirmed]
        version = newest_pass(verdicts)
        if version is None or any(certifications.confirmed(spark, r, location) for r in rows
                                  if r["version"] == version and r["status"] == PASS):
            return version, verdicts
        unconfirmed.add(version)


def _found(verdicts: list[tuple[int, str]]) -> str:
    if not verdicts:
        return "no certification at all"
    failed = sorted({version for version, status in verdicts if status == FAIL})
    return f"only FAIL verdicts (versions {', '.join(map(str, failed))})"


def certified(spark: SparkSession, tables_root: str, table: str) -> CertifiedProduct:
    """The product table at its newest PASS version, with that version (for receipts and lineage)."""
    return certified_all(spark, tables_root, [table])[0]


def certified_all(spark: SparkSession, tables_root: str, tables: list[str]) -> list[CertifiedProduct]:
    """``certified`` for several product tables, reading the certifications once."""
    locations = {table: catalog.location(tables_root, table) for table in tables}
    rows = (certifications.read(spark, tables_root).where(F.col("location").isin(list(locations.values())))
            .select("location", "version", "status", "evidence_path").collect())
    found = []
    for table, location in locations.items():
        version, verdicts = newest_confirmed_pass(spark, [r for r in rows if r["location"] == location], location)
        if version is None:
            raise UncertifiedProductError(
                f"data product table {table} ({location}) cannot be read: expected a Delta version certified "
                f"PASS in {certifications.TABLE}, found {_found(verdicts)}")
        found.append(CertifiedProduct(table, location, version,
                                      spark.read.format("delta").option("versionAsOf", version).load(location)))
    return found


def read_certified(spark: SparkSession, tables_root: str, table: str) -> DataFrame:
    """The product table as a DataFrame at its newest PASS-certified Delta version."""
    return certified(spark, tables_root, table).frame
