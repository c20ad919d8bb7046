"""What a data product is: one declaration holding its table, inputs, transform, schema, checks and totals.

The build job, the checker and the rerun planner all read this declaration (``products/__init__.py``
lists them); a new product is one new module with one ``Product``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from checks import spec
from checks.spec import Check
from common import catalog
from common.catalog import TableSpec
from common.errors import LedgerlaneError

Inputs = dict[str, DataFrame]   # upstream products by product name, raw sources by table name


@dataclass(frozen=True)
class Product:
    name: str
    table: TableSpec                     # where and how it is stored; registered in the catalog
    keys: tuple[str, ...]
    schema: StructType                   # the contract: the build selects exactly this, the suite checks it
    transform: Callable[[Inputs, datetime, str], DataFrame]     # pure: (inputs, cut-off, run id) -> rows
    totals: Callable[[Inputs, datetime, str], DataFrame]        # pure: one row the product must reconcile with
    checks: Callable[[str, datetime, dict], list[Check]]        # (run id, cut-off, totals) -> value checks
    upstream: tuple[str, ...] = ()       # products read through the certification gate
    sources: tuple[str, ...] = ()        # raw tables read at a pinned Delta version

    def __post_init__(self) -> None:
        catalog.register(self.table)

    def build(self, inputs: Inputs, as_of: datetime, run_id: str) -> DataFrame:
        """The transform's rows as the contract: exactly its columns, in its order, of its types."""
        return conform(self.transform(inputs, as_of, run_id), self.schema, self.name)

    def suite(self, run_id: str, as_of: datetime, expected: dict) -> list[Check]:
        """Every check of the product for a run: schema contract, keys, then its own value checks."""
        contract = [(field.name, type(field.dataType).__name__) for field in self.schema.fields]
        return [spec.columns_are(tuple(name for name, _ in contract)),
                *[spec.has_type(name, type_name) for name, type_name in contract],
                *[spec.not_null(key) for key in self.keys], spec.unique(*self.keys),
                *self.checks(run_id, as_of, expected)]


def conform(frame: DataFrame, schema: StructType, product: str) -> DataFrame:
    """Select the contract's columns; a missing column or another type is a bug in the transform, refused."""
    produced = {field.name: field.dataType for field in frame.schema.fields}
    wrong = [f"{field.name} ({'missing' if field.name not in produced else produced[field.name].simpleString()}"
             f", expected {field.dataType.simpleString()})"
             for field in schema.fields
             if field.name not in produced or type(produced[field.name]) is not type(field.dataType)]
    if wrong:
        raise LedgerlaneError(f"data product '{product}': the transform does not produce its contract: "
                              + "; ".join(wrong))
    return frame.select(*[F.col(field.name) for field in schema.fields])


def latest_snapshot(snapshots: DataFrame) -> DataFrame:
    """Rows of the newest (as_of, run_id) in a snapshot product (account_features, merchant_risk)."""
    newest = snapshots.agg(F.max(F.struct("as_of", "run_id")).alias("_newest"))
    return snapshots.join(newest, on=F.struct("as_of", "run_id") == F.col("_newest"), how="left_semi")
