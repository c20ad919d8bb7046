"""Where each product of a run stands: PASS, FAIL, UNCERTIFIED, ERROR or MISSING.

The state is that of the version the run's latest build wrote: a PASS of an older version does not
count once the product was rebuilt, and a failed build leaves the product in ERROR until rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from checks import certifications
from checks.results import FAIL, PASS
from common import catalog
from products import NAMES
from products import product as find_product
from jobs import receipts

UNCERTIFIED, ERROR, MISSING = "UNCERTIFIED", "ERROR", "MISSING"


@dataclass(frozen=True)
class ProductStatus:
    product: str
    state: str
    version: int | None
    detail: str

    def to_dict(self) -> dict:
        return {"product": self.product, "state": self.state, "version": self.version, "detail": self.detail}


def status_from(product: str, run_receipts: list[dict], verdicts: list[tuple[int, str]]) -> ProductStatus:
    """Pure: the state of ``product`` from the run's receipts and its (version, status) certifications."""
    build = receipts.latest(run_receipts, product, receipts.BUILD)
    if build is None:
        return ProductStatus(product, MISSING, None, "never built in this run")
    if build["status"] != receipts.BUILT:
        return ProductStatus(product, ERROR, None, f"build attempt {build['attempt']} failed: {'; '.join(build['reasons'])}")
    version = build["outputs"][0]["version"]
    found = {status for v, status in verdicts if v == version}
    if FAIL in found:
        return ProductStatus(product, FAIL, version, f"version {version} certified FAIL")
    if PASS in found and not certify_receipt(run_receipts, product, version):
        # A certify interrupted between its verdict and its receipt: certify again (the closure would
        # refuse a PASS without its receipt).
        return ProductStatus(product, UNCERTIFIED, version, f"version {version} has a PASS verdict but no certify "
                                                            "receipt: its certification was interrupted")
    if PASS in found:
        return ProductStatus(product, PASS, version, f"version {version} certified PASS")
    return ProductStatus(product, UNCERTIFIED, version, f"version {version} built, not certified")


def certify_receipt(run_receipts: list[dict], product: str, version: int) -> dict | None:
    """The run's PASS certify receipt for exactly this version of the product, if any."""
    return next((r for r in run_receipts if r["product"] == product and r["step"] == receipts.CERTIFY
                 and r["status"] == PASS and (r["outputs"] or [{}])[0].get("version") == version), None)


def run_statuses(spark: SparkSession, tables_root: str, run_id: str,
                 run_receipts: list[dict] | None = None) -> dict[str, ProductStatus]:
    """Every product's state for the run, from one read of the receipts and one of the certifications."""
    run_receipts = receipts.for_run(spark, tables_root, run_id) if run_receipts is None else run_receipts
    rows = (certifications.read(spark, tables_root).where(F.col("run_id") == run_id)
            .select("product", "location", "version", "status").collect())
    result = {}
    for name in NAMES:
        location = catalog.location(tables_root, find_product(name).table.name)
        verdicts = [(r["version"], r["status"]) for r in rows if r["product"] == name and r["location"] == location]
        result[name] = status_from(name, run_receipts, verdicts)
    return result
