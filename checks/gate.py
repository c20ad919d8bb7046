"""The read gate (invariant 5, "no PASS, no read"): the only way anything reads a data product.

A product is read at its newest Delta version certified PASS, even when a newer version exists; a
version that was ever certified FAIL never counts. No such version raises ``UncertifiedProductError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from checks import certifications
from checks.results import FAIL, PASS
from common import catalog
from common.errors import UncertifiedProductError
from common.products import product as find_product


@dataclass(frozen=True)
class CertifiedProduct:
    product: str
    location: str
    version: int
    frame: DataFrame


def newest_pass(verdicts: list[tuple[int, str]]) -> int | None:
    """The newest version with a PASS and no FAIL (conflicting verdicts fail closed)."""
    failed = {version for version, status in verdicts if status == FAIL}
    passed = {version for version, status in verdicts if status == PASS} - failed
    return max(passed) if passed else None


def _tables_root(settings_or_root) -> str:
    return getattr(settings_or_root, "tables_root", None) or str(settings_or_root)


def _found(verdicts: list[tuple[int, str]]) -> str:
    if not verdicts:
        return "no certification at all"
    failed = sorted({version for version, status in verdicts if status == FAIL})
    return f"only FAIL verdicts (versions {', '.join(map(str, failed))})"


def certified(spark: SparkSession, settings_or_root, product: str) -> CertifiedProduct:
    """The product at its newest PASS version, with that version (for receipts and lineage)."""
    found = find_product(product)
    root = _tables_root(settings_or_root)
    location = catalog.location(root, found.table)
    verdicts = certifications.verdicts_of(spark, root, found.name, location)
    version = newest_pass(verdicts)
    if version is None:
        raise UncertifiedProductError(
            f"data product '{found.name}' ({location}) cannot be read: expected a Delta version certified PASS "
            f"in {certifications.TABLE}, found {_found(verdicts)}")
    frame = spark.read.format("delta").option("versionAsOf", version).load(location)
    return CertifiedProduct(found.name, location, version, frame)


def read_certified(spark: SparkSession, settings_or_root, product: str) -> DataFrame:
    """The product as a DataFrame at its newest PASS-certified Delta version."""
    return certified(spark, settings_or_root, product).frame


def certified_version(spark: SparkSession, settings_or_root, product: str) -> int:
    return certified(spark, settings_or_root, product).version
