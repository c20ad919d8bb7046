"""A thin Great Expectations 1.x adapter: our ``Check`` values in, our ``CheckResult`` values out.

Ephemeral context -> Spark data source -> dataframe asset -> whole-dataframe batch -> one suite,
validated with the smallest result format on a cached frame. Nothing outside this module imports GE.
"""

from __future__ import annotations

import os
from typing import Any

from pyspark.sql import DataFrame

from checks.results import CheckResult, plain
from checks.spec import ROW_KINDS, Check

ENGINE = "great_expectations"
BOOLEAN_ONLY = "BOOLEAN_ONLY"
# Observed values and unexpected counts, but no partial lists (each would cost another Spark job).
BASIC = {"result_format": "BASIC", "partial_unexpected_count": 0}


def evaluate(df: DataFrame, checks: list[Check], *, result_format: Any = None) -> list[CheckResult]:
    """Validate ``df`` against ``checks``; results come back in ``checks`` order.

    By default a BOOLEAN_ONLY pass decides, and only the checks that failed are validated again with
    BASIC to observe why: the common all-PASS case pays for the smallest result format only.
    """
    cached = not df.is_cached
    if cached:
        df.cache()
    try:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": df})
        results = _validate(batch, checks, result_format or BOOLEAN_ONLY)
        if result_format is None:
            results = _observe_failures(batch, checks, results)
    finally:
        if cached:
            df.unpersist()
    return results


def _observe_failures(batch, checks: list[Check], results: list[CheckResult]) -> list[CheckResult]:
    """Validate only the failed checks again with BASIC, to record what they observed."""
    failed = [i for i, r in enumerate(results) if not r.passed and not isinstance(r.observed, dict)]
    observed = dict(zip(failed, _validate(batch, [checks[i] for i in failed], BASIC))) if failed else {}
    return [observed.get(i, result) for i, result in enumerate(results)]


def _validate(batch, checks: list[Check], result_format: Any) -> list[CheckResult]:
    validation = batch.validate(_suite(checks), result_format=result_format)
    by_index = {r.expectation_config.meta["check"]: r for r in validation.results}
    return [_result(check, by_index.get(i)) for i, check in enumerate(checks)]


def _gx():
    # A one-shot job must never phone home: analytics off before GE is first imported.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _batch_definition():
    gx = _gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                               progress_bars=ProgressBarsConfig(globally=False))
    context = gx.get_context(project_config=config, mode="ephemeral")
    # persist=False: evaluate() caches the frame itself and, unlike GE, also releases it afterwards.
    asset = context.data_sources.add_spark(name="ledgerlane", persist=False).add_dataframe_asset(name="product")
    return asset.add_batch_definition_whole_dataframe("version")


def _suite(checks: list[Check]):
    gx = _gx()
    suite = gx.ExpectationSuite(name="ledgerlane-certification")
    for index, check in enumerate(checks):
        suite.add_expectation(expectation(check, meta={"check": index}))
    return suite


def expectation(check: Check, meta: dict | None = None):
    """The GE expectation for one check (row conditions are Spark SQL, like ``Check.where``)."""
    import great_expectations.expectations as gxe

    common: dict[str, Any] = {"meta": meta or {}}
    if check.where:
        common.update(row_condition=check.where, condition_parser="spark")
    first = check.columns[0] if check.columns else None
    if check.kind == "columns":
        return gxe.ExpectTableColumnsToMatchOrderedList(column_list=list(check.values), **common)
    if check.kind == "type":
        return gxe.ExpectColumnValuesToBeOfType(column=first, type_=check.values[0], **common)
    if check.kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=first, **common)
    if check.kind == "unique" and len(check.columns) == 1:
        return gxe.ExpectColumnValuesToBeUnique(column=first, **common)
    if check.kind == "unique":
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=list(check.columns), **common)
    if check.kind == "between":
        return gxe.ExpectColumnValuesToBeBetween(column=first, min_value=check.low, max_value=check.high, **common)
    if check.kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=first, value_set=list(check.values), **common)
    if check.kind == "at_least":
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=first, column_B=check.columns[1], or_equal=True, ignore_row_if="either_value_is_missing", **common)
    return _value_expectation(check, common)


def _value_expectation(check: Check, common: dict[str, Any]):
    import great_expectations.expectations as gxe

    if check.kind == "row_count":
        return gxe.ExpectTableRowCountToBeBetween(min_value=check.low, max_value=check.high, **common)
    if check.kind == "sum":
        return gxe.ExpectColumnSumToBeBetween(column=check.columns[0], min_value=check.low, max_value=check.high,
                                              **common)
    if check.kind == "distinct_count":
        return gxe.ExpectColumnUniqueValueCountToBeBetween(
            column=check.columns[0], min_value=check.low, max_value=check.high, **common)
    raise ValueError(f"unknown check kind {check.kind!r}")


def _result(check: Check, outcome) -> CheckResult:
    """Our result from GE's; an expectation that raised (or went missing) fails closed."""
    if outcome is None:
        return CheckResult(check.name, False, {"error": "great_expectations returned no result"})
    error = _raised(outcome.exception_info or {})
    if error is not None:
        return CheckResult(check.name, False, {"error": error})
    detail = outcome.result or {}
    observed = detail.get("unexpected_count") if check.kind in ROW_KINDS else detail.get("observed_value")
    return CheckResult(check.name, bool(outcome.success), plain(observed))


def _raised(info: dict) -> str | None:
    """GE reports one exception flat, several keyed by metric; either way, the first message."""
    candidates = [info, *(value for value in info.values() if isinstance(value, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            return str(candidate.get("exception_message") or "expectation raised")
    return None
