"""The read gate (invariant 5, "no PASS, no read"): the only way anything reads a data product.

A product table is read at its newest Delta version certified PASS, even when a newer version exists;
a version that was ever certified FAIL never counts. No such version raises ``UncertifiedProductError``.
The caller names the product's table (``products.product(name).table.name``) and the tables root.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

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


def _found(verdicts: list[tuple[int, str]]) -> str:
    if not verdicts:
        return "no certification at all"
    failed = sorted({version for version, status in verdicts if status == FAIL})
    return f"only FAIL verdicts (versions {', '.join(map(str, failed))})"


def certified(spark: SparkSession, tables_root: str, table: str) -> CertifiedProduct:
    """The product table at its newest PASS version, with that version (for receipts and lineage)."""
    location = catalog.location(tables_root, table)
    verdicts = certifications.verdicts_of(spark, tables_root, location)
    version = newest_pass(verdicts)
    if version is None:
        raise UncertifiedProductError(
            f"data product table {table} ({location}) cannot be read: expected a Delta version certified PASS "
            f"in {certifications.TABLE}, found {_found(verdicts)}")
    frame = spark.read.format("delta").option("versionAsOf", version).load(location)
    return CertifiedProduct(table, location, version, frame)


def read_certified(spark: SparkSession, tables_root: str, table: str) -> DataFrame:
    """The product table as a DataFrame at its newest PASS-certified Delta version."""
    return certified(spark, tables_root, table).frame
