"""The same checks as one native Spark aggregate: schema from the plan, everything else in a single pass.

The benchmark's yardstick for the Great Expectations adapter. Observations match GE's, except
``unique``: GE counts every row of a duplicated key, this counts the rows beyond the first.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from checks.results import CheckResult, plain
from checks.spec import ROW_KINDS, SCHEMA_KINDS, Check

ENGINE = "native"


def evaluate(df: DataFrame, checks: list[Check]) -> list[CheckResult]:
    """Every check of ``checks`` in order; all data checks share one ``agg`` (one Spark job)."""
    data = [(i, check) for i, check in enumerate(checks) if check.kind not in SCHEMA_KINDS]
    row = df.agg(*[aggregate(check).alias(f"c{i}") for i, check in data]).first() if data else None
    return [judge_schema(df, check) if check.kind in SCHEMA_KINDS else judge(check, row[f"c{i}"])
            for i, check in enumerate(checks)]


def _selected(check: Check) -> Column:
    return F.expr(check.where) if check.where else F.lit(True)


def _offending(check: Check) -> Column:
    """The rows a row-level check rejects (nulls are only the business of not_null)."""
    cols = [F.col(name) for name in check.columns]
    if check.kind == "not_null":
        return cols[0].isNull()
    if check.kind == "between":
        low = cols[0] < F.lit(check.low) if check.low is not None else F.lit(False)
        high = cols[0] > F.lit(check.high) if check.high is not None else F.lit(False)
        return cols[0].isNotNull() & (low | high)
    if check.kind == "in_set":
        return cols[0].isNotNull() & ~cols[0].isin(*check.values)
    if check.kind == "at_least":
        return cols[0].isNotNull() & cols[1].isNotNull() & (cols[0] < cols[1])
    raise ValueError(f"check kind {check.kind!r} has no row condition")


def aggregate(check: Check) -> Column:
    rows = _selected(check)
    if check.kind == "unique":
        present = F.count(F.when(rows & _all_present(check.columns), F.lit(1)))
        return present - F.count_distinct(*[F.when(rows, F.col(name)) for name in check.columns])
    if check.kind in ROW_KINDS:
        return F.count(F.when(rows & _offending(check), F.lit(1)))
    if check.kind == "row_count":
        return F.count(F.when(rows, F.lit(1)))
    if check.kind == "sum":
        return F.sum(F.when(rows, F.col(check.columns[0])))
    if check.kind == "distinct_count":
        return F.count_distinct(F.when(rows, F.col(check.columns[0])))
    raise ValueError(f"unknown check kind {check.kind!r}")


def _all_present(columns: tuple[str, ...]) -> Column:
    present = F.lit(True)
    for name in columns:
        present = present & F.col(name).isNotNull()
    return present


def judge(check: Check, value) -> CheckResult:
    if check.kind in ROW_KINDS:
        return CheckResult(check.name, value == 0, value)
    observed = plain(value)
    inside = observed is not None and check.low <= observed <= check.high
    return CheckResult(check.name, inside, observed)


def judge_schema(df: DataFrame, check: Check) -> CheckResult:
    if check.kind == "columns":
        return CheckResult(check.name, df.columns == list(check.values), df.columns)
    field = next((f for f in df.schema.fields if f.name == check.columns[0]), None)
    observed = type(field.dataType).__name__ if field else None
    return CheckResult(check.name, observed == check.values[0], observed)
